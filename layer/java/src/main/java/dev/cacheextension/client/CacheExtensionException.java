package dev.cacheextension.client;

import java.time.Duration;

/**
 * A read or a refresh through the cache extension failed. Subclasses name the common cases: {@link NotFoundException}
 * (404), {@link UpstreamException} (502/504) and {@link ExtensionUnavailableException} (no answer, a timeout,
 * or 503 until the start-up window ran out). Anything else (400, 401, 403, an undecodable value, ...) is this
 * class itself.
 *
 * <p>Messages name the route, the name and the status or error code; they never contain a value or the token.
 */
public class CacheExtensionException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String code;
    private final Duration retryAfter;

    public CacheExtensionException(String message) {
        this(message, 0, null, null);
    }

    public CacheExtensionException(String message, int status, String code) {
        this(message, status, code, null);
    }

    public CacheExtensionException(String message, int status, String code, Throwable cause) {
        this(message, status, code, null, cause);
    }

    /** With {@code retryAfter}, the answer's Retry-After (null without one); see {@link #retryAfter()}. */
    public CacheExtensionException(String message, int status, String code, Duration retryAfter, Throwable cause) {
        super(message, cause);
        this.status = status;
        this.code = code;
        this.retryAfter = retryAfter;
    }

    /**
     * The HTTP status of the extension's error answer (503 when it stayed not ready), or 0 when the failure was
     * not an error answer: no answer at all, a timeout, or a value that could not be decoded as asked.
     */
    public int status() {
        return status;
    }

    /**
     * The {@code error} field of the extension's JSON error body (for example {@code "NotConfigured"},
     * {@code "AccessDeniedException"}), {@code "MissingToken"} when the client had no token and sent nothing, or
     * {@code null} when there was none.
     */
    public String code() {
        return code;
    }

    /**
     * How long to wait before trying again, from the {@code Retry-After} header of the extension's error answer
     * (it sends one, at least 1 s, with 429 {@code "RateLimited"}), or {@code null} without one in delta-seconds
     * form: whole seconds, digits only; an HTTP-date, a fraction or anything else is ignored.
     */
    public Duration retryAfter() {
        return retryAfter;
    }
}
