package dev.cacheextension.client;

import java.time.Duration;

/**
 * 404: the name is not in the extension's config.yaml ({@code code()} is {@code "NotConfigured"}), or it does
 * not exist upstream ({@code "NotFound"}, {@code "ResourceNotFoundException"}, ...).
 */
public class NotFoundException extends CacheExtensionException {
    private static final long serialVersionUID = 1L;

    public NotFoundException(String message, int status, String code) {
        super(message, status, code);
    }

    public NotFoundException(String message, int status, String code, Duration retryAfter) {
        super(message, status, code, retryAfter, null);
    }
}
