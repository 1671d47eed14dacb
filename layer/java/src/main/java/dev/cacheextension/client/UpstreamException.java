package dev.cacheextension.client;

import java.time.Duration;

/**
 * 502 or 504: AWS failed or timed out and the extension had no older value to serve; {@code code()} carries
 * AWS's error code (for example {@code "AccessDeniedException"}).
 */
public class UpstreamException extends CacheExtensionException {
    private static final long serialVersionUID = 1L;

    public UpstreamException(String message, int status, String code) {
        super(message, status, code);
    }

    public UpstreamException(String message, int status, String code, Duration retryAfter) {
        super(message, status, code, retryAfter, null);
    }
}
