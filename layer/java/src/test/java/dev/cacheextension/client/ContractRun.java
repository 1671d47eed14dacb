package dev.cacheextension.client;

import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One run of the shared contract table (tests/contract/cases.json, whose "about" field defines the format) against
 * a real extension, configured by the environment: CACHE_EXTENSION_PORT and AWS_SESSION_TOKEN (the extension's),
 * CONTRACT_DOWN_PORT (a port nothing listens on). Each case runs on a client of its own; {@link #run} says null
 * when it passed, else why not, in words that never hold a token or an expected value.
 */
final class ContractRun {

    /**
     * The token variables as the contract names them (every client's chain, first non-empty one wins), not taken
     * from the client under test, so that a client missing one fails its case.
     */
    static final List<String> TOKEN_VARIABLES =
            List.of("CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    /** What a case's "env" replaces: the token variables and AWS's extension's port (CACHE_EXTENSION_PORT stays). */
    static final List<String> ENV_CASE_VARIABLES = List.of("CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_SESSION_TOKEN",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT");
    /** Reads the extension's GET /stats around a case that expects "requests"; never the client under test. */
    private static final HttpClient STATS_HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).proxy(HttpClient.Builder.NO_PROXY).build();

    final List<Map<String, Object>> cases = new ArrayList<>();
    /** Everything a message must never contain: expected values (texts, JSON texts, longer JSON strings). */
    private final Set<String> values = new LinkedHashSet<>();

    ContractRun(Path table) throws Exception {
        Map<String, Object> parsed = asMap(Json.parse(Files.readString(table, StandardCharsets.UTF_8)));
        for (Object c : asList(parsed.get("cases"))) {
            cases.add(asMap(c));
            ContractExpect.collectValues(asMap(asMap(c).get("expect")), values);
        }
    }

    static String id(Map<String, Object> testCase) {
        return (String) testCase.get("id");
    }

    static boolean startup(Map<String, Object> testCase) {
        return Boolean.TRUE.equals(testCase.get("startup"));
    }

    static boolean hasEnv(Map<String, Object> testCase) {
        return testCase.containsKey("env");
    }

    interface CaseRun {
        String run() throws Exception;
    }

    /**
     * The case's outcome, and when it expects "requests", also whether the extension served that many reads
     * while it ran: the sum over every source of Hits, Misses and StaleServed in GET /stats, taken right before
     * (the case makes its client after) and right after it, pass or fail.
     */
    static String counted(Map<String, Object> testCase, CaseRun caseRun) throws Exception {
        Object want = asMap(testCase.get("expect")).get("requests");
        if (want == null) {
            return caseRun.run();
        }
        long before = servedReads();
        String why = null;
        try {
            why = caseRun.run();
        } finally {
            long got = servedReads() - before;
            if (why == null && got != ((BigDecimal) want).longValueExact()) {
                why = "the extension served " + got + " reads during the case, expected " + want;
            }
        }
        return why;
    }

    /** Hits + Misses + StaleServed over every source in the extension's GET /stats (sent with its token). */
    private static long servedReads() throws Exception {
        String token = System.getenv("AWS_SESSION_TOKEN");
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + System.getenv("CACHE_EXTENSION_PORT") + "/stats"))
                .timeout(Duration.ofSeconds(5))
                .header(CacheClient.TOKEN_HEADER, token == null ? "" : token)
                .GET().build();
        HttpResponse<String> response = STATS_HTTP.send(request, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        if (response.statusCode() != 200) {
            throw new IllegalStateException("GET /stats answered " + response.statusCode());
        }
        long sum = 0;
        for (Object counters : asMap(asMap(Json.parse(response.body())).get("cache")).values()) {
            for (String counter : new String[] {"Hits", "Misses", "StaleServed"}) {
                Object n = asMap(counters).get(counter);
                sum += n == null ? 0 : ((BigDecimal) n).longValueExact();
            }
        }
        return sum;
    }

    /** Runs one case on a client of its own (an empty near cache); null when it passed, else why not. */
    String run(Map<String, Object> testCase) {
        Map<String, Object> options = testCase.containsKey("client") ? asMap(testCase.get("client")) : null;
        List<String> tokens = new ArrayList<>();
        if (options != null && options.get("token") instanceof String) {
            tokens.add((String) options.get("token"));
        }
        for (String name : TOKEN_VARIABLES) { // every token the client could have taken from its environment
            String value = System.getenv(name);
            if (value != null && !value.isEmpty()) {
                tokens.add(value);
            }
        }
        Map<String, Object> expect = asMap(testCase.get("expect"));
        List<Object> steps = steps(testCase);
        Object result = null;
        try {
            // Made here: a bad CACHE_EXTENSION_CLIENT_CACHE is an error of the case, as a failed call is.
            CacheClient client = options == null ? new CacheClient() : build(options);
            for (Object s : steps) { // an exception ends the steps
                Map<String, Object> step = asMap(s);
                if (step.containsKey("pauseMs")) {
                    Thread.sleep(((BigDecimal) step.get("pauseMs")).longValueExact());
                    continue;
                }
                result = call(client, (String) step.get("call"), (String) step.get("name"), (String) step.get("source"),
                        transform((String) step.get("transform")), (String) step.get("key"));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "test error: interrupted";
        } catch (CacheExtensionException e) {
            String leak = leak(e, tokens);
            if (leak != null) {
                return leak;
            }
            if (!expect.containsKey("error")) {
                return "unexpected " + describe(e);
            }
            return checkError(e, expect);
        }
        return ContractExpect.check(expect, result);
    }

    /** The case's "steps", or its "call" made "repeat" times (default 1) as steps. */
    private static List<Object> steps(Map<String, Object> testCase) {
        if (testCase.containsKey("steps")) {
            if (testCase.containsKey("call") || testCase.containsKey("repeat")) {
                throw new IllegalArgumentException("a case has steps or a call, not both");
            }
            return asList(testCase.get("steps"));
        }
        Map<String, Object> step = new LinkedHashMap<>();
        for (String key : new String[] {"call", "name", "source", "transform", "key"}) {
            if (testCase.containsKey(key)) {
                step.put(key, testCase.get(key));
            }
        }
        int repeat = testCase.containsKey("repeat") ? ((BigDecimal) testCase.get("repeat")).intValueExact() : 1;
        return new ArrayList<>(Collections.nCopies(repeat, step));
    }

    private static Object call(CacheClient client, String call, String name, String source, Transform transform,
                               String key) {
        if (source != null && !"refresh".equals(call)) {
            throw new IllegalArgumentException("only a refresh call takes a source");
        }
        if (key != null) {
            if ("parameter".equals(call)) {
                return transform == null ? client.getParameterKey(name, key) : client.getParameterKey(name, key, transform);
            }
            if ("secret".equals(call)) {
                return transform == null ? client.getSecretKey(name, key) : client.getSecretKey(name, key, transform);
            }
            throw new IllegalArgumentException("a " + call + " call takes no key");
        }
        if (transform != null && (call.startsWith("refresh") || "item".equals(call))) {
            throw new IllegalArgumentException("a " + call + " call takes no transform");
        }
        switch (call) {
            case "parameter":
                return transform == null ? client.getParameter(name) : client.getParameter(name, transform);
            case "secret":
                return transform == null ? client.getSecret(name) : client.getSecret(name, transform);
            case "item":
                return client.getItem(name);
            case "refresh":
                return source == null ? client.refresh(name) : client.refresh(name, source);
            case "refreshAll":
                return client.refreshAll();
            default:
                throw new IllegalArgumentException("unknown call " + call);
        }
    }

    private static CacheClient build(Map<String, Object> options) {
        CacheClient.Builder builder = CacheClient.builder();
        for (Map.Entry<String, Object> option : options.entrySet()) {
            Object value = option.getValue();
            switch (option.getKey()) {
                case "port":
                    if ("$DOWN_PORT".equals(value)) {
                        builder.port(Integer.parseInt(System.getenv("CONTRACT_DOWN_PORT")));
                    } else {
                        builder.port(((BigDecimal) value).intValueExact());
                    }
                    break;
                case "token":
                    builder.token((String) value);
                    break;
                case "timeoutMs":
                    builder.timeout(Duration.ofMillis(((BigDecimal) value).longValueExact()));
                    break;
                case "startupTimeoutMs":
                    builder.startupTimeout(Duration.ofMillis(((BigDecimal) value).longValueExact()));
                    break;
                case "nearCache":
                    builder.nearCache((Boolean) value);
                    break;
                case "values":
                    @SuppressWarnings("unchecked")
                    Map<String, Map<String, Object>> substituted = (Map<String, Map<String, Object>>) value;
                    builder.values(substituted);
                    break;
                default:
                    throw new IllegalArgumentException("unknown client option " + option.getKey());
            }
        }
        return builder.build();
    }

    private static String checkError(CacheExtensionException e, Map<String, Object> expect) {
        String kind = (String) expect.get("error");
        boolean matches;
        switch (kind) {
            case "NotFound":
                matches = e instanceof NotFoundException;
                break;
            case "Unavailable":
                matches = e instanceof ExtensionUnavailableException;
                break;
            case "Upstream":
                matches = e instanceof UpstreamException;
                break;
            case "Error":
                matches = e.getClass() == CacheExtensionException.class;
                break;
            default:
                return "test error: unknown error kind " + kind;
        }
        if (!matches) {
            return "expected " + kind + ", got " + describe(e);
        }
        if (expect.containsKey("status") && ((BigDecimal) expect.get("status")).intValueExact() != e.status()) {
            return "expected status " + expect.get("status") + ", got " + describe(e);
        }
        if (expect.containsKey("code") && !expect.get("code").equals(e.code())) {
            return "expected code " + expect.get("code") + ", got " + describe(e);
        }
        if (expect.containsKey("retryAfterAtLeast") && (e.retryAfter() == null // whole seconds: the header's form
                || BigDecimal.valueOf(e.retryAfter().getSeconds()).compareTo((BigDecimal) expect.get("retryAfterAtLeast")) < 0)) {
            return "expected a retryAfter of at least " + expect.get("retryAfterAtLeast") + " s, got " + e.retryAfter() + ": " + describe(e);
        }
        for (Object text : expect.containsKey("messageIncludes") ? asList(expect.get("messageIncludes")) : List.of()) {
            if (!String.valueOf(e.getMessage()).contains((String) text)) {
                return "the message does not contain " + text + ": " + describe(e);
            }
        }
        for (Object text : expect.containsKey("messageExcludes") ? asList(expect.get("messageExcludes")) : List.of()) {
            if (String.valueOf(e.getMessage()).contains((String) text)) {
                return "the message shows a value it must not";
            }
        }
        return null;
    }

    /** Why the exception (or one of its causes) says too much, or null. */
    private String leak(Throwable e, List<String> tokens) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String message = String.valueOf(t.getMessage());
            for (String token : tokens) {
                if (message.contains(token)) {
                    return "an exception message contains the token";
                }
            }
            for (String value : values) {
                if (message.contains(value)) {
                    return "an exception message contains an expected value";
                }
            }
        }
        return null;
    }

    private static Transform transform(String name) {
        if (name == null) {
            return null;
        }
        switch (name) {
            case "json":
                return Transform.JSON;
            case "binary":
                return Transform.BINARY;
            default:
                throw new IllegalArgumentException("unknown transform " + name);
        }
    }

    private static String describe(CacheExtensionException e) {
        return e.getClass().getSimpleName() + " (status " + e.status() + ", code " + e.code() + "): " + e.getMessage();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asMap(Object value) {
        return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    static List<Object> asList(Object value) {
        return (List<Object>) value;
    }
}
