package dev.cacheextension.client;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * HTTP to the extension on 127.0.0.1: one {@link HttpClient} (its kept-alive connections), the retries while the
 * extension starts, and the mapping of its answers to the client's exceptions. Error messages never carry a value
 * or the token.
 */
final class Transport {

    static final String HOST = "127.0.0.1";

    /**
     * The same words in every client: what to set when there is no token. Without one the extension answers 401,
     * so the client says so itself, before it connects, rather than send a request that must fail.
     */
    private static final String MISSING_TOKEN = "no token for the cache extension, so nothing was sent: set"
            + " CACHE_EXTENSION_TOKEN to the extension's token (on Lambda, AWS_SESSION_TOKEN, or"
            + " AWS_CONTAINER_AUTHORIZATION_TOKEN with SnapStart, is set for you; AWS_TOKEN is read too)";
    private static final long FIRST_BACKOFF_MS = 10;
    private static final long MAX_BACKOFF_MS = 100;
    private static final int MAX_EXTENSION_MESSAGE = 300;
    /** A larger Retry-After counts as this (RFC 9110 1.2.2's rule for delta-seconds). */
    private static final long MAX_RETRY_AFTER_SECONDS = 1L << 31;

    private final int port;
    private final String token;
    private final Duration startupTimeout;
    private final HttpClient http;

    /** {@code token}: null or empty for none (nothing is sent then); {@code timeout} also bounds connecting. */
    Transport(int port, String token, Duration timeout, Duration startupTimeout) {
        this.port = port;
        this.token = token;
        this.startupTimeout = startupTimeout;
        this.http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(timeout)
                .followRedirects(HttpClient.Redirect.NEVER)
                .proxy(HttpClient.Builder.NO_PROXY) // never through a proxy: the extension is on loopback
                .build();
    }

    /** A name as a query parameter's value: percent-encoded, a space as {@code %20} (URLEncoder's form encoding writes +). */
    static String encode(String name) {
        return URLEncoder.encode(name, StandardCharsets.UTF_8).replace("+", "%20");
    }

    /**
     * One request (a GET, else a POST with no body) within {@code limit}; its answer unless that is a 503 to a
     * GET. While the extension starts, a refused connection is retried, and for a GET (idempotent) also a
     * connection closed before any answer and 503. A connection closed before any answer is retried once at once,
     * for a POST too: HttpClient pools connections, so a refresh may go out on one the extension closed while idle
     * (say, across a freeze of the environment), and a repeat is harmless because the extension coalesces forced
     * refreshes of an item within a second (the repeat gets the first one's outcome and makes no AWS call).
     */
    HttpResponse<byte[]> send(boolean get, String pathAndQuery, String call, Duration limit) {
        if (token == null || token.isEmpty()) {
            throw new CacheExtensionException(call + ": " + MISSING_TOKEN, 0, "MissingToken");
        }
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://" + HOST + ":" + port + pathAndQuery))
                .timeout(limit);
        if (get) {
            request.GET();
        } else {
            request.POST(HttpRequest.BodyPublishers.noBody());
        }
        request.header(CacheClient.TOKEN_HEADER, token);
        HttpRequest built = request.build();
        long start = System.nanoTime();
        long window = startupTimeout.toNanos();
        long backoff = FIRST_BACKOFF_MS;
        boolean retriedBrokenConnection = false;
        while (true) {
            HttpResponse<byte[]> response = null;
            IOException failure = null;
            try {
                response = http.send(built, HttpResponse.BodyHandlers.ofByteArray());
            } catch (HttpTimeoutException e) { // also the connect timeout
                throw new ExtensionUnavailableException("the cache extension on " + HOST + ":" + port
                        + " did not answer " + call + " within " + limit.toMillis() + " ms", 0, null, e);
            } catch (IOException e) {
                // Connection refused while the extension starts, or a kept-alive connection closed under us
                // before any answer: sorted out below.
                failure = e;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CacheExtensionException(call + " was interrupted", 0, null, e);
            }
            if (response != null && (response.statusCode() != 503 || !get)) {
                return response;
            }
            if (failure != null && !(failure instanceof ConnectException) && !retriedBrokenConnection) {
                // A kept-alive connection the extension closed (say, across a freeze of the environment): one
                // immediate retry on a new connection, even when the start-up window is zero or over. For a POST
                // too: one that did arrive is coalesced with this repeat, which makes no AWS call.
                retriedBrokenConnection = true;
                continue;
            }
            if (failure != null && !(failure instanceof ConnectException) && !get) {
                // Broken twice in a row: not a stale connection, so no more repeats of the POST.
                throw new ExtensionUnavailableException("the cache extension on " + HOST + ":" + port
                        + " broke off " + call + " (" + failure.getClass().getSimpleName() + "), also when retried once",
                        0, null, failure);
            }
            long elapsed = System.nanoTime() - start;
            if (elapsed >= window) {
                throw unavailable(response, failure, call, elapsed);
            }
            long sleepMs = Math.min(backoff, Math.max(1, (window - elapsed + 999_999) / 1_000_000));
            try {
                Thread.sleep(sleepMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CacheExtensionException(call + " was interrupted", 0, null, e);
            }
            backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        }
    }

    private ExtensionUnavailableException unavailable(HttpResponse<byte[]> response, IOException failure, String call, long elapsedNanos) {
        long ms = elapsedNanos / 1_000_000;
        if (response != null) {
            String[] error = errorBody(response.body());
            return new ExtensionUnavailableException("the cache extension on " + HOST + ":" + port
                    + " was not ready (503" + (error[0] != null ? " " + error[0] : "") + ") for " + call
                    + " and stayed so for " + ms + " ms", 503, error[0], retryAfter(response), null);
        }
        String why = failure instanceof ConnectException
                ? "connection refused, retried for " + ms + " ms); is its layer attached to the function and"
                        + " its port (CACHE_EXTENSION_PORT, else PARAMETERS_SECRETS_EXTENSION_HTTP_PORT) the same for"
                        + " both?"
                : "the connection closed without an answer (" + failure.getClass().getSimpleName() + "), retried for "
                        + ms + " ms)";
        return new ExtensionUnavailableException("the cache extension is not reachable on " + HOST + ":" + port
                + " (" + call + ": " + why, 0, null, failure);
    }

    Body answer(HttpResponse<byte[]> response, String call) {
        int status = response.statusCode();
        if (status == 200) {
            Optional<String> type = response.headers().firstValue("Content-Type");
            boolean binary = type.isPresent()
                    && type.get().trim().toLowerCase(Locale.ROOT).startsWith("application/octet-stream");
            return new Body(response.body(), binary);
        }
        String[] error = errorBody(response.body());
        String code = error[0];
        StringBuilder message = new StringBuilder(call).append(": ").append(status);
        if (code != null) {
            message.append(' ').append(code);
        }
        if (error[1] != null) {
            message.append(": ").append(error[1]);
        }
        Duration retryAfter = retryAfter(response);
        if (status == 404) {
            throw new NotFoundException(message.toString(), status, code, retryAfter);
        }
        if (status == 502 || status == 504) {
            throw new UpstreamException(message.toString(), status, code, retryAfter);
        }
        throw new CacheExtensionException(message.toString(), status, code, retryAfter, null);
    }

    /**
     * The answer's Retry-After in delta-seconds form (RFC 9110: digits only), else null: an HTTP-date, a fraction,
     * a sign or any other text is ignored, never thrown.
     */
    private static Duration retryAfter(HttpResponse<?> response) {
        String text = response.headers().firstValue("Retry-After").orElse("");
        int start = 0;
        int end = text.length();
        while (start < end && (text.charAt(start) == ' ' || text.charAt(start) == '\t')) {
            start++;
        }
        while (end > start && (text.charAt(end - 1) == ' ' || text.charAt(end - 1) == '\t')) {
            end--;
        }
        if (start == end) {
            return null;
        }
        for (int i = start; i < end; i++) {
            char c = text.charAt(i);
            if (c < '0' || c > '9') {
                return null;
            }
        }
        while (start < end - 1 && text.charAt(start) == '0') {
            start++;
        }
        // At most 10 digits fit a long with room to spare; more is past the cap anyway.
        long seconds = end - start > 10 ? MAX_RETRY_AFTER_SECONDS
                : Math.min(Long.parseLong(text.substring(start, end)), MAX_RETRY_AFTER_SECONDS);
        return Duration.ofSeconds(seconds);
    }

    /** {code, message} from the extension's {"error": ..., "message": ...}; nulls when absent. */
    private String[] errorBody(byte[] body) {
        String[] result = new String[2];
        try {
            Object parsed = Json.parse(new String(body, StandardCharsets.UTF_8));
            if (parsed instanceof Map) {
                Object code = ((Map<?, ?>) parsed).get("error");
                Object message = ((Map<?, ?>) parsed).get("message");
                if (code instanceof String && !((String) code).isEmpty() && ((String) code).length() <= 100) {
                    result[0] = (String) code;
                }
                if (message instanceof String && !((String) message).isEmpty()) {
                    String text = (String) message;
                    if (text.length() > MAX_EXTENSION_MESSAGE) {
                        text = text.substring(0, MAX_EXTENSION_MESSAGE) + "...";
                    }
                    // The extension's messages never carry a value; never repeat the token either.
                    if (token == null || !text.contains(token)) {
                        result[1] = text;
                    }
                }
            }
        } catch (IllegalArgumentException e) {
            // not the extension's JSON error body: the status alone says enough
        }
        return result;
    }
}
