package dev.cacheextension.client;

import java.time.Duration;

/**
 * The extension could not be reached, did not answer within the client's timeout, or kept answering 503
 * until the client's start-up window ran out. {@code status()} is 503 in the last case, otherwise 0.
 */
public class ExtensionUnavailableException extends CacheExtensionException {
    private static final long serialVersionUID = 1L;

    public ExtensionUnavailableException(String message, int status, String code, Throwable cause) {
        super(message, status, code, cause);
    }

    public ExtensionUnavailableException(String message, int status, String code, Duration retryAfter, Throwable cause) {
        super(message, status, code, retryAfter, cause);
    }
}
