import dev.cacheextension.client.CacheClient;
import dev.cacheextension.client.CacheExtensionException;
import dev.cacheextension.client.ExtensionUnavailableException;
import dev.cacheextension.client.Json;
import dev.cacheextension.client.NotFoundException;
import dev.cacheextension.client.Transform;
import dev.cacheextension.client.UpstreamException;

import java.io.IOException;
import java.io.InputStream;
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
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The Java client's run of the shared contract table (tests/contract/cases.json, whose "about" field defines
 * the format) against a real extension.
 *
 * <pre>
 *   CONTRACT_CASES=... CACHE_EXTENSION_PORT=... AWS_SESSION_TOKEN=... CONTRACT_DOWN_PORT=... \
 *     java -cp cache-extension-client.jar:classes ContractTest
 * </pre>
 *
 * With CONTRACT_STARTUP=1 only the cases marked "startup" run, otherwise only the others. Prints one line per
 * case ("ok ID" or "FAIL ID: why"), then a summary; exits 1 when a case failed.
 *
 * <p>A case with "env" runs in a child JVM of this class started with that environment (CONTRACT_ONLY=its id), so
 * that the client takes its token from its real process environment ({@code System.getenv()} cannot be changed).
 */
public class ContractTest {

    /** The clients' token chain, first non-empty one wins; a case's "env" replaces all three. */
    private static final List<String> TOKEN_VARIABLES = CacheClient.TOKEN_VARIABLES;
    /** A child runs one case: its JVM's start plus at most one case's time. */
    private static final long CHILD_TIMEOUT_SECONDS = 30;
    /** Reads the extension's GET /stats around a case that expects "requests"; never the client under test. */
    private static final HttpClient STATS_HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).proxy(HttpClient.Builder.NO_PROXY).build();

    public static void main(String[] args) throws Exception {
        String casesPath = System.getenv("CONTRACT_CASES");
        if (casesPath == null || casesPath.isEmpty()) {
            System.out.println("skipped: CONTRACT_CASES is not set");
            return;
        }
        boolean startup = "1".equals(System.getenv("CONTRACT_STARTUP"));
        String only = System.getenv("CONTRACT_ONLY"); // set in a child: the id of the one case it runs
        Map<String, Object> table = asMap(Json.parse(Files.readString(Path.of(casesPath), StandardCharsets.UTF_8)));
        List<Object> cases = asList(table.get("cases"));

        // Everything a message must never contain: expected values (texts, JSON texts, longer JSON strings).
        Set<String> values = new LinkedHashSet<>();
        for (Object c : cases) {
            collectValues(asMap(asMap(c).get("expect")), values);
        }

        int passed = 0;
        List<String> failed = new ArrayList<>();
        long started = System.nanoTime();
        for (Object c : cases) {
            Map<String, Object> testCase = asMap(c);
            String id = (String) testCase.get("id");
            if (only != null ? !only.equals(id) : Boolean.TRUE.equals(testCase.get("startup")) != startup) {
                continue;
            }
            String why;
            try {
                if (!testCase.containsKey("env")) {
                    why = counted(testCase, () -> run(testCase, values));
                } else if (only == null) {
                    // The child's JVM makes no request before its client exists: counting around it is the same.
                    why = counted(testCase, () -> runInChild(testCase, id));
                } else {
                    why = checkChildEnvironment(asMap(testCase.get("env")));
                    why = why != null ? why : run(testCase, values); // its parent counts the requests
                }
            } catch (Exception e) {
                why = "test error: " + e;
            }
            if (why == null) {
                passed++;
                System.out.println("ok " + id);
            } else {
                failed.add(id);
                System.out.println("FAIL " + id + ": " + why);
            }
        }
        if (only != null && passed + failed.size() != 1) {
            System.out.println("FAIL CONTRACT_ONLY names " + (passed + failed.size()) + " cases, not one");
            System.exit(1);
        }
        long ms = (System.nanoTime() - started) / 1_000_000;
        System.out.println((failed.isEmpty() ? "passed: " : "FAILED: ") + passed + " passed, " + failed.size()
                + " failed" + (startup ? " (startup cases)" : "") + " in " + ms + " ms");
        System.exit(failed.isEmpty() ? 0 : 1);
    }

    /**
     * Runs a case with "env" in a child JVM of this class, started with the case's environment; null when it
     * passed there, else why not (the child's output, with every token in it masked).
     */
    private static String runInChild(Map<String, Object> testCase, String id) throws Exception {
        if (testCase.containsKey("client") && asMap(testCase.get("client")).containsKey("token")) {
            return "test error: a case with env gives no token option";
        }
        String token = System.getenv("AWS_SESSION_TOKEN");
        if (token == null || token.isEmpty()) {
            return "test error: AWS_SESSION_TOKEN (the extension's token, \"$TOKEN\") is not set";
        }
        Map<String, String> variables = new LinkedHashMap<>();
        for (Map.Entry<String, Object> entry : asMap(testCase.get("env")).entrySet()) {
            variables.put(entry.getKey(), "$TOKEN".equals(entry.getValue()) ? token : (String) entry.getValue());
        }
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder builder = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "ContractTest");
        Map<String, String> env = builder.environment();
        env.keySet().removeAll(TOKEN_VARIABLES);
        env.putAll(variables);
        env.put("CONTRACT_ONLY", id);
        Process child = builder.redirectErrorStream(true).start();
        CompletableFuture<byte[]> output = CompletableFuture.supplyAsync(() -> {
            try (InputStream in = child.getInputStream()) {
                return in.readAllBytes(); // ends when the child exits or is killed
            } catch (IOException e) {
                return ("(output not read: " + e.getClass().getSimpleName() + ")").getBytes(StandardCharsets.UTF_8);
            }
        });
        boolean exited = child.waitFor(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        if (!exited) {
            child.destroyForcibly().waitFor(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }
        String text = new String(output.get(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS), StandardCharsets.UTF_8);
        for (String secret : variables.values()) {
            text = secret.isEmpty() ? text : text.replace(secret, "<token>");
        }
        text = text.replace(token, "<token>");
        if (exited && child.exitValue() == 0 && Arrays.asList(text.split("\n")).contains("ok " + id)) {
            return null;
        }
        String shown = "\n  | " + text.strip().replace("\n", "\n  | "); // never a line of its own starting "ok "
        return (exited ? "failed in its child JVM (exit " + child.exitValue() + "):" : "the child JVM did not finish within "
                + CHILD_TIMEOUT_SECONDS + " s:") + shown;
    }

    /** In the child: the environment the parent gave it is the case's, token variables included; null when so. */
    private static String checkChildEnvironment(Map<String, Object> caseEnv) {
        for (String name : TOKEN_VARIABLES) {
            Object want = caseEnv.get(name);
            String got = System.getenv(name);
            boolean matches;
            if (want == null) {
                matches = got == null;
            } else if ("$TOKEN".equals(want)) {
                matches = got != null && !got.isEmpty();
            } else {
                matches = want.equals(got);
            }
            if (!matches) {
                return "test error: " + name + " in the child's environment is not what the case says";
            }
        }
        return null;
    }

    interface CaseRun {
        String run() throws Exception;
    }

    /**
     * The case's outcome, and when it expects "requests", also whether the extension served that many reads
     * while it ran: the sum over every source of Hits, Misses and StaleServed in GET /stats, taken right before
     * (the case makes its client after) and right after it, pass or fail.
     */
    private static String counted(Map<String, Object> testCase, CaseRun caseRun) throws Exception {
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
    private static String run(Map<String, Object> testCase, Set<String> values) {
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
                        transform((String) step.get("transform")));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "test error: interrupted";
        } catch (CacheExtensionException e) {
            String leak = leak(e, tokens, values);
            if (leak != null) {
                return leak;
            }
            if (!expect.containsKey("error")) {
                return "unexpected " + describe(e);
            }
            return checkError(e, expect);
        }
        if (expect.containsKey("error")) {
            return "expected error " + expect.get("error") + ", got a " + typeOf(result);
        }
        if (expect.containsKey("value")) {
            return expect.get("value").equals(result) ? null : "value differs (got a " + typeOf(result) + ")";
        }
        if (expect.containsKey("json")) {
            String diff = diff(expect.get("json"), result, "$");
            return diff == null ? null : "json differs at " + diff;
        }
        if (expect.containsKey("includes")) {
            return includes(result, expect.get("includes")) ? null : "does not include " + Json.write(expect.get("includes"))
                    + ": " + Json.write(result);
        }
        if (expect.containsKey("exact")) {
            return exact(result, asMap(expect.get("exact")));
        }
        if (expect.containsKey("base64")) {
            if (!(result instanceof byte[])) {
                return "expected bytes, got a " + typeOf(result);
            }
            byte[] want = Base64.getDecoder().decode((String) expect.get("base64"));
            return Arrays.equals(want, (byte[]) result) ? null : "bytes differ";
        }
        return "test error: nothing to expect";
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
        for (String key : new String[] {"call", "name", "source", "transform"}) {
            if (testCase.containsKey(key)) {
                step.put(key, testCase.get(key));
            }
        }
        int repeat = testCase.containsKey("repeat") ? ((BigDecimal) testCase.get("repeat")).intValueExact() : 1;
        return new ArrayList<>(Collections.nCopies(repeat, step));
    }

    private static Object call(CacheClient client, String call, String name, String source, Transform transform) {
        if (source != null && !"refresh".equals(call)) {
            throw new IllegalArgumentException("only a refresh call takes a source");
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
        return null;
    }

    /** Why the exception (or one of its causes) says too much, or null. */
    private static String leak(Throwable e, List<String> tokens, Set<String> values) {
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

    private static void collectValues(Map<String, Object> expect, Set<String> values) {
        if (expect.get("value") instanceof String) {
            values.add((String) expect.get("value"));
        }
        if (expect.get("base64") instanceof String) {
            values.add((String) expect.get("base64"));
        }
        if (expect.containsKey("json")) {
            Object json = expect.get("json");
            values.add(Json.write(json));
            collectStrings(json, values);
        }
    }

    /** Strings inside expected JSON, from 8 characters up (shorter ones, like "x", occur in any sentence). */
    private static void collectStrings(Object json, Set<String> values) {
        if (json instanceof String && ((String) json).length() >= 8) {
            values.add((String) json);
        } else if (json instanceof Map) {
            for (Object v : ((Map<?, ?>) json).values()) {
                collectStrings(v, values);
            }
        } else if (json instanceof List) {
            for (Object v : (List<?>) json) {
                collectStrings(v, values);
            }
        }
    }

    /** The "exact" expectation: at each path (member names and array indexes joined by "."), a BigDecimal equal
     * in value to the decimal text (compareTo, so 1.50 equals 1.5); null when every one is. */
    private static String exact(Object result, Map<String, Object> exact) {
        for (Map.Entry<String, Object> entry : exact.entrySet()) {
            Object got = result;
            for (String step : entry.getKey().split("\\.")) {
                got = got instanceof List ? ((List<?>) got).get(Integer.parseInt(step))
                        : got instanceof Map ? ((Map<?, ?>) got).get(step) : null;
            }
            if (!(got instanceof BigDecimal)) {
                return entry.getKey() + ": expected a BigDecimal, got a " + typeOf(got);
            }
            if (((BigDecimal) got).compareTo(new BigDecimal((String) entry.getValue())) != 0) {
                return entry.getKey() + ": " + got + " is not " + entry.getValue();
            }
        }
        return null;
    }

    /** The "includes" expectation: objects may have more members, arrays more elements, in any order. */
    private static boolean includes(Object got, Object want) {
        if (want instanceof Map) {
            if (!(got instanceof Map)) {
                return false;
            }
            Map<?, ?> g = (Map<?, ?>) got;
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) want).entrySet()) {
                if (!g.containsKey(entry.getKey()) || !includes(g.get(entry.getKey()), entry.getValue())) {
                    return false;
                }
            }
            return true;
        }
        if (want instanceof List) {
            if (!(got instanceof List)) {
                return false;
            }
            for (Object w : (List<?>) want) {
                if (((List<?>) got).stream().noneMatch(g -> includes(g, w))) {
                    return false;
                }
            }
            return true;
        }
        return diff(want, got, "$") == null;
    }

    /** Where two JSON values differ (numbers compared as numbers), or null when equal. */
    private static String diff(Object want, Object got, String path) {
        if (want instanceof Map) {
            if (!(got instanceof Map)) {
                return path + " (expected an object, got a " + typeOf(got) + ")";
            }
            Map<?, ?> w = (Map<?, ?>) want;
            Map<?, ?> g = (Map<?, ?>) got;
            if (!w.keySet().equals(g.keySet())) {
                return path + " (keys " + g.keySet() + ", expected " + w.keySet() + ")";
            }
            for (Map.Entry<?, ?> entry : w.entrySet()) {
                String d = diff(entry.getValue(), g.get(entry.getKey()), path + "." + entry.getKey());
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        if (want instanceof List) {
            if (!(got instanceof List)) {
                return path + " (expected an array, got a " + typeOf(got) + ")";
            }
            List<?> w = (List<?>) want;
            List<?> g = (List<?>) got;
            if (w.size() != g.size()) {
                return path + " (" + g.size() + " elements, expected " + w.size() + ")";
            }
            for (int i = 0; i < w.size(); i++) {
                String d = diff(w.get(i), g.get(i), path + "[" + i + "]");
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        if (want instanceof Number) {
            if (!(got instanceof Number)) {
                return path + " (expected a number, got a " + typeOf(got) + ")";
            }
            return new BigDecimal(want.toString()).compareTo(new BigDecimal(got.toString())) == 0 ? null : path;
        }
        if (want == null) {
            return got == null ? null : path + " (expected null, got a " + typeOf(got) + ")";
        }
        return want.equals(got) ? null : path + " (" + typeOf(got) + " differs)";
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

    private static String typeOf(Object value) {
        return value == null ? "null" : value.getClass().getSimpleName();
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> asMap(Object value) {
        return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> asList(Object value) {
        return (List<Object>) value;
    }
}
