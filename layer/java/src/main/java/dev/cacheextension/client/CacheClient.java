package dev.cacheextension.client;

import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Reads SSM parameters, Secrets Manager secrets and DynamoDB items from the cache extension running beside
 * the function, with one local HTTP GET each.
 *
 * <pre>{@code
 * private static final CacheClient CACHE = new CacheClient();   // once per execution environment
 *
 * String url = CACHE.getParameter("/app/url");
 * Map<String, Object> settings = CACHE.getParameter("/app/settings", Transform.JSON);
 * String password = CACHE.getSecret("app/db-password");
 * byte[] key = CACHE.getSecret("app/signing-key", Transform.BINARY);
 * Map<String, Object> item = CACHE.getItem("Table-hashValue-sortValue");
 * CACHE.refresh("/app/url");   // fetch it from AWS again now, past its TTL
 * }</pre>
 *
 * <p>Defaults come from the environment, chosen as the extension chooses its own (an empty variable counts as
 * unset; a builder option wins): the port from the first non-empty of {@code CACHE_EXTENSION_PORT} and
 * {@code PARAMETERS_SECRETS_EXTENSION_HTTP_PORT} (AWS's Parameters and Secrets extension's), else 4000; the token
 * from the first non-empty of {@code CACHE_EXTENSION_TOKEN}, {@code AWS_TOKEN} (the Secrets Manager Agent's),
 * {@code AWS_SESSION_TOKEN} and {@code AWS_CONTAINER_AUTHORIZATION_TOKEN} (Lambda SnapStart has no session
 * token). So a function moved over from either of AWS's keeps its environment. With no token (none of them set, or
 * {@code token("")}), a call that would ask the extension throws a {@link CacheExtensionException} with code
 * {@code "MissingToken"} and status 0 before it connects: nothing is sent. Each call waits at most
 * {@link #DEFAULT_TIMEOUT} for an answer; while the extension is still starting (connection refused, a broken
 * connection before any answer, or 503) it is retried with a short backoff for up to
 * {@link #DEFAULT_STARTUP_TIMEOUT}. A refresh ({@link #refresh(String, String)}, {@link #refreshAll()}) waits for
 * AWS, so for up to {@link #DEFAULT_REFRESH_TIMEOUT}; it is a POST, retried while its connection is refused and
 * once, at once, on a kept-alive connection found closed (safe: the extension answers a repeat of a forced refresh
 * within a second with the first one's outcome, with no AWS call); no other failure or error answer is retried.
 * Failures are unchecked {@link CacheExtensionException}s.
 *
 * <p>For unit tests of a handler without an extension, substitute the values: {@link Builder#values(Map)}, or
 * the environment variable {@code CACHE_EXTENSION_CLIENT_VALUES} naming a JSON file of the same shape,
 * {@code {"parameters": {name: value}, "secrets": {name: value}, "dynamodb": {key: {item}}}}. Such a client
 * makes no HTTP request at all; a name it does not hold is a {@link NotFoundException} with code
 * {@code "NotConfigured"}, as the extension answers for a name missing from its config.yaml. A parameter or
 * secret given as a string is its value as stored in AWS; any other JSON value (object, array, number, boolean)
 * stands for a value whose text is that JSON: read as its compact JSON text (the file's numbers as written),
 * parsed by {@link Transform#JSON}, refused by {@link Transform#BINARY}. {@code null}, and items that are not
 * objects, are refused when the client is built ({@link IllegalArgumentException} for builder values,
 * {@link CacheExtensionException} for the file), naming the section and the name, never the value.
 *
 * <p><b>Near cache.</b> A value the extension answers with {@code Cache-Control: max-age=N}, N &gt; 0 (the whole
 * seconds its own copy stays fresh), is kept in this client's memory for N seconds from the answer's arrival
 * ({@link System#nanoTime()}), by route and name; reads of it until then make no request. What is kept is the raw
 * answer, so every read decodes it again (any {@link Transform}) and returns a fresh object: changing a returned
 * map or array never changes the next read. Misses, stale values ({@code max-age=0}), answers without a usable
 * max-age or with {@code no-store}/{@code no-cache}, and errors are not kept. At most 1,000 values are kept per
 * client (expired ones go first, then the oldest). {@link #refresh(String, String)} drops that name (in that
 * source, or in every source) and {@link #refreshAll()} drops everything, before their request, even when it
 * fails. A refresh made by another process or another client reaches this client's copy only when its max-age
 * runs out. Turn it off with {@link Builder#nearCache(boolean) nearCache(false)} or the environment variable
 * {@code CACHE_EXTENSION_CLIENT_CACHE=off} (on/off, true/false, 1/0, yes/no in any case; empty counts as unset,
 * which is on; the builder option wins); a client of substituted values has none.
 *
 * <p>Instances are thread-safe (a near cache hit takes no lock); each keeps its own HTTP/1.1 connections alive
 * and its own near cache, so create one per execution environment (a static field) or use {@link #getDefault()}.
 */
public final class CacheClient {

    /** The header that carries the token. */
    public static final String TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token";

    /**
     * Where the default token comes from, in order: the first non-empty one wins ({@code AWS_TOKEN} is the Secrets
     * Manager Agent's; Lambda SnapStart has no {@code AWS_SESSION_TOKEN}). The extension reads the same variables
     * in the same order.
     */
    public static final List<String> TOKEN_VARIABLES = List.of("CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_SESSION_TOKEN",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN");

    /**
     * Where the default port comes from, in order: the first non-empty one wins, else {@link #DEFAULT_PORT}
     * ({@code PARAMETERS_SECRETS_EXTENSION_HTTP_PORT} is AWS's extension's). The extension reads the same.
     */
    public static final List<String> PORT_VARIABLES =
            List.of("CACHE_EXTENSION_PORT", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT");

    public static final int DEFAULT_PORT = 4000;
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(1);
    public static final Duration DEFAULT_STARTUP_TIMEOUT = Duration.ofSeconds(2);
    /** The bound on a refresh, which waits for AWS (the extension bounds its own wait at 4 s). */
    public static final Duration DEFAULT_REFRESH_TIMEOUT = Duration.ofSeconds(5);
    /** The variable naming a JSON file of substituted values. */
    public static final String VALUES_VARIABLE = "CACHE_EXTENSION_CLIENT_VALUES";

    static final String PARAMETERS = "parameters";
    static final String SECRETS = "secrets";
    static final String DYNAMODB = "dynamodb";

    private static final Object DEFAULT_LOCK = new Object();
    private static volatile CacheClient defaultClient;

    private final Duration timeout;
    private final Duration startupTimeout;
    private final Duration refreshTimeout;
    /** Substituted values by source, then name; null for a client of the real extension. */
    private final Map<String, Map<String, Body>> values;
    private final int port;
    /** HTTP to the extension; null for substituted values. */
    private final Transport transport;
    /** Values the extension let us keep (see the class description); null when off or for substituted values. */
    private final NearCache<Body> nearCache;

    /** A client configured from the environment (see the class description). */
    public CacheClient() {
        this(new Builder());
    }

    private CacheClient(Builder builder) {
        Map<String, String> env = builder.environment != null ? builder.environment : System.getenv();
        this.timeout = builder.timeout;
        this.startupTimeout = builder.startupTimeout;
        this.refreshTimeout = builder.refreshTimeout;
        boolean near = NearCache.enabled(builder.nearCache, env);
        if (builder.values != null) {
            this.values = Substitutes.of(builder.values, "values");
        } else {
            this.values = Substitutes.fromEnvironment(env);
        }
        if (values != null) {
            this.port = 0;
            this.transport = null;
            this.nearCache = null;
            return;
        }
        this.nearCache = near ? new NearCache<>() : null;
        this.port = builder.port != null ? builder.port : Settings.portFromEnvironment(env);
        String token = builder.token != null ? builder.token : Settings.tokenFromEnvironment(env);
        this.transport = new Transport(port, token, timeout, startupTimeout);
    }

    /** Starts a builder; options not set come from the environment as for {@link #CacheClient()}. */
    public static Builder builder() {
        return new Builder();
    }

    /** A client shared by the whole process, created from the environment on first use. */
    public static CacheClient getDefault() {
        CacheClient client = defaultClient;
        if (client == null) {
            synchronized (DEFAULT_LOCK) {
                client = defaultClient;
                if (client == null) {
                    client = new CacheClient();
                    defaultClient = client;
                }
            }
        }
        return client;
    }

    /** An SSM parameter's value ({@code GET /parameters?name=}); a name may be {@code /aws/reference/secretsmanager/ID}. */
    public String getParameter(String name) {
        return (String) read(PARAMETERS, "parameter", name, null);
    }

    /**
     * An SSM parameter's value decoded by {@code transform}: JSON gives an Object, BINARY a {@code byte[]}, null
     * the text as {@link #getParameter(String)} does.
     */
    public <T> T getParameter(String name, Transform transform) {
        return cast(read(PARAMETERS, "parameter", name, transform));
    }

    /**
     * A secret's {@code SecretString} ({@code GET /secrets?name=}). A binary secret is a
     * {@link CacheExtensionException}: read it with {@code getSecret(name, Transform.BINARY)}.
     */
    public String getSecret(String name) {
        return (String) read(SECRETS, "secret", name, null);
    }

    /**
     * A secret decoded by {@code transform}: JSON gives an Object, BINARY a {@code byte[]} (a binary secret's
     * bytes as they are, a text secret decoded from base64), null the text as {@link #getSecret(String)} does.
     */
    public <T> T getSecret(String name, Transform transform) {
        return cast(read(SECRETS, "secret", name, transform));
    }

    /**
     * One top-level key of a JSON object parameter, as text: a string member's text, any other member's JSON text
     * exactly as the value holds it (1.50 stays 1.50); the last of a repeated key counts. An absent key is a
     * {@link NotFoundException} (404, code {@code KeyNotFound}), a value that is not a JSON object a
     * {@link CacheExtensionException} (400, code {@code NotJsonObject}). The whole value is read (and kept by the
     * near cache), so several keys of one value cost one request.
     */
    public String getParameterKey(String name, String key) {
        return (String) read(PARAMETERS, "parameter", name, null, key);
    }

    /** {@link #getParameterKey(String, String)}'s text decoded by {@code transform}. */
    public <T> T getParameterKey(String name, String key, Transform transform) {
        return cast(read(PARAMETERS, "parameter", name, transform, key));
    }

    /**
     * One top-level key of a JSON object secret, as text ({@code getSecretKey("app/db", "password")}), by the rules
     * of {@link #getParameterKey(String, String)}; a binary secret is a 400 {@code NotJsonObject}.
     */
    public String getSecretKey(String name, String key) {
        return (String) read(SECRETS, "secret", name, null, key);
    }

    /** {@link #getSecretKey(String, String)}'s text decoded by {@code transform}. */
    public <T> T getSecretKey(String name, String key, Transform transform) {
        return cast(read(SECRETS, "secret", name, transform, key));
    }

    /**
     * A DynamoDB item ({@code GET /dynamodb?name=}) by its key {@code TABLE-HASH[-SORT]} or its alias, as a
     * plain JSON object: numbers are {@link java.math.BigDecimal}s with every digit, binary values base64 text.
     */
    public Map<String, Object> getItem(String key) {
        return cast(read(DYNAMODB, "item", key, Transform.JSON));
    }

    /**
     * Fetches {@code name} from AWS again now, past its TTL ({@code POST /refresh?name=}), in every source that
     * configures or allows it. See {@link #refresh(String, String)}.
     */
    public Map<String, Object> refresh(String name) {
        return refresh(name, null);
    }

    /**
     * Fetches {@code name} from AWS again now, past its TTL ({@code POST /refresh?name=&source=}), in
     * {@code source} ({@code "parameters"}, {@code "secrets"} or {@code "dynamodb"}; null: every source that
     * configures or allows it), and waits for it. Returns the extension's answer,
     * {@code {"refreshed": [{"source": ..., "name": ...}], "failed": []}}. A failed refresh throws as a failed
     * read does ({@link NotFoundException}, {@link UpstreamException}); refreshes that come too fast a
     * {@link CacheExtensionException} with status 429, code {@code "RateLimited"} and
     * {@link CacheExtensionException#retryAfter()}, the time until one is allowed again. A client of substituted
     * values has nothing to refresh: empty lists. The near cache drops what it keeps of {@code name} (in
     * {@code source}, or in every source) before the request, whatever its outcome.
     *
     * @throws IllegalArgumentException for another source
     */
    public Map<String, Object> refresh(String name, String source) {
        Objects.requireNonNull(name, "name");
        if (source != null && !PARAMETERS.equals(source) && !SECRETS.equals(source) && !DYNAMODB.equals(source)) {
            throw new IllegalArgumentException("the source must be parameters, secrets, dynamodb or null, not '" + source + "'");
        }
        if (nearCache != null) {
            nearCache.drop(source, name); // before the POST, so also when it fails
        }
        return requestRefresh("name=" + Transport.encode(name) + (source != null ? "&source=" + source : ""),
                "refresh of '" + name + "'" + (source != null ? " in " + source : ""));
    }

    /**
     * Fetches every configured item from AWS again now ({@code POST /refresh?all=true}). Returns
     * {@code {"refreshed": [...], "failed": [{"source", "name", "status", "error"}, ...]}}: failures are listed,
     * not thrown. The near cache drops everything it keeps before the request, whatever its outcome.
     */
    public Map<String, Object> refreshAll() {
        if (nearCache != null) {
            nearCache.dropAll(); // before the POST, so also when it fails
        }
        return requestRefresh("all=true", "refresh of all items");
    }

    @Override
    public String toString() {
        return values != null ? "CacheClient[substituted values]" : "CacheClient[" + Transport.HOST + ":" + port + "]";
    }

    @SuppressWarnings("unchecked")
    private static <T> T cast(Object value) {
        return (T) value;
    }

    // ---------------------------------------------------------------------------------------------------------

    private Object read(String source, String noun, String name, Transform transform) {
        return read(source, noun, name, transform, null);
    }

    private Object read(String source, String noun, String name, Transform transform, String key) {
        Objects.requireNonNull(name, "name");
        if (key != null && key.isEmpty()) {
            throw new IllegalArgumentException("key must not be empty");
        }
        String what = noun + " '" + name + "'";
        Body body = values != null ? substituted(source, name, what) : fetch(source, name, what);
        if (key != null) {
            body = Keys.member(body, key, what);
        }
        return BodyDecoder.decode(body, source, noun, transform, what);
    }

    private Body substituted(String source, String name, String what) {
        Body body = values.get(source).get(name);
        if (body == null) {
            throw new NotFoundException(what + ": 404 NotConfigured: not among the values given to this client"
                    + " (builder values or " + VALUES_VARIABLE + ")", 404, "NotConfigured");
        }
        return body;
    }

    private Map<String, Object> requestRefresh(String query, String what) {
        if (values != null) {
            Map<String, Object> nothing = new LinkedHashMap<>(); // substituted values never go stale
            nothing.put("refreshed", new ArrayList<>());
            nothing.put("failed", new ArrayList<>());
            return nothing;
        }
        String call = what + " (POST /refresh)";
        HttpResponse<byte[]> response = transport.send(false, "/refresh?" + query, call, refreshTimeout);
        Object result = BodyDecoder.json(transport.answer(response, call), what);
        if (!(result instanceof Map)) {
            throw new CacheExtensionException("the extension's answer to the " + what + " is not a JSON object", 200, null);
        }
        return cast(result);
    }

    private Body fetch(String source, String name, String what) {
        NearCache<Body> near = nearCache;
        long generation = 0;
        if (near != null) {
            Body kept = near.get(source, name);
            if (kept != null) {
                return kept;
            }
            generation = near.generation();
        }
        String call = what + " (GET /" + source + ")";
        HttpResponse<byte[]> response = transport.send(true, "/" + source + "?name=" + Transport.encode(name), call, timeout);
        long arrived = System.nanoTime();
        Body body = transport.answer(response, call); // throws for an error answer: never kept
        if (near != null) {
            near.keep(source, name, body, NearCache.maxAge(response.headers().allValues("Cache-Control")), arrived, generation);
        }
        return body;
    }

    // ---------------------------------------------------------------------------------------------------------

    /** Options for a {@link CacheClient}; whatever is not set comes from the environment. Not thread-safe. */
    public static final class Builder {
        private Integer port;
        private String token;
        private Duration timeout = DEFAULT_TIMEOUT;
        private Duration startupTimeout = DEFAULT_STARTUP_TIMEOUT;
        private Duration refreshTimeout = DEFAULT_REFRESH_TIMEOUT;
        private Map<?, ?> values;
        private Map<String, String> environment;
        private Boolean nearCache;

        private Builder() {
        }

        /**
         * The extension's port (default: the first non-empty of {@link #PORT_VARIABLES} in the environment, else
         * 4000); it wins over the environment.
         */
        public Builder port(int port) {
            this.port = Settings.checkPort(port, "port");
            return this;
        }

        /**
         * The token sent in {@code X-Aws-Parameters-Secrets-Token} (default: the first non-empty of
         * {@link #TOKEN_VARIABLES} in the environment); null restores the default. An empty token is no token: calls
         * that would ask the extension throw code {@code "MissingToken"} before connecting, as with none in the
         * environment.
         */
        public Builder token(String token) {
            this.token = token == null ? null : Settings.checkToken(token);
            return this;
        }

        /** How long one request may take, connecting included (default 1 s). */
        public Builder timeout(Duration timeout) {
            this.timeout = positive(timeout, "timeout");
            return this;
        }

        /** How long a refresh may take, which waits for AWS (default 5 s; connecting within {@link #timeout}). */
        public Builder refreshTimeout(Duration refreshTimeout) {
            this.refreshTimeout = positive(refreshTimeout, "refresh timeout");
            return this;
        }

        private static Duration positive(Duration duration, String what) {
            Objects.requireNonNull(duration, what);
            if (duration.isNegative() || duration.isZero()) {
                throw new IllegalArgumentException("the " + what + " must be positive");
            }
            return duration;
        }

        /**
         * How long a call keeps retrying, from its first attempt, while the extension is not yet reachable or
         * answers 503 (default 2 s; zero: no retry).
         */
        public Builder startupTimeout(Duration startupTimeout) {
            Objects.requireNonNull(startupTimeout, "startupTimeout");
            if (startupTimeout.isNegative()) {
                throw new IllegalArgumentException("the startup timeout must not be negative");
            }
            this.startupTimeout = startupTimeout;
            return this;
        }

        /**
         * Serve these values instead of asking the extension (for unit tests): keys {@code "parameters"},
         * {@code "secrets"}, {@code "dynamodb"}, each a map of name to value. Strings are served as they are,
         * {@code byte[]} as a binary value, any other JSON value (Map, List, Number, Boolean) as its compact JSON
         * text, which {@link Transform#BINARY} refuses; a null value is refused ({@link IllegalArgumentException}),
         * and so is a DynamoDB item that is not a Map. The values are copied when the client is built. Null
         * restores the default
         * ({@code CACHE_EXTENSION_CLIENT_VALUES}, else the extension).
         */
        public Builder values(Map<String, ? extends Map<String, ?>> values) {
            this.values = values;
            return this;
        }

        /**
         * Whether the client keeps values for their max-age (see the class description); default:
         * {@code CACHE_EXTENSION_CLIENT_CACHE} (on/off, true/false, 1/0, yes/no in any case), else on. This option,
         * when given, wins over the variable.
         */
        public Builder nearCache(boolean nearCache) {
            this.nearCache = nearCache;
            return this;
        }

        /** Read the defaults from this map instead of the process environment (for tests); null restores it. */
        public Builder environment(Map<String, String> environment) {
            this.environment = environment == null ? null : Collections.unmodifiableMap(new LinkedHashMap<>(environment));
            return this;
        }

        /**
         * @throws IllegalArgumentException  if the environment holds an invalid port or token
         * @throws CacheExtensionException   if {@code CACHE_EXTENSION_CLIENT_VALUES} names an unreadable or invalid file,
         *                                   or {@code CACHE_EXTENSION_CLIENT_CACHE} is not a valid on/off value (status 0)
         */
        public CacheClient build() {
            return new CacheClient(this);
        }
    }
}
