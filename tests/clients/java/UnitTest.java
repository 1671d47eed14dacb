import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.cacheextension.client.CacheClient;
import dev.cacheextension.client.CacheExtensionException;
import dev.cacheextension.client.ExtensionUnavailableException;
import dev.cacheextension.client.Json;
import dev.cacheextension.client.NotFoundException;
import dev.cacheextension.client.Transform;
import dev.cacheextension.client.UpstreamException;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Unit tests of the Java client: its JSON reader and writer, and its HTTP behaviour against a local test
 * double of the extension's HTTP surface (com.sun.net.httpserver on an ephemeral loopback port) that records
 * what it receives. No JUnit (no Maven repository is reachable): each check is a named lambda; prints
 * "ok NAME" or "FAIL NAME: why", then a summary, and exits 1 when a check failed. A watchdog ends the run
 * after 40 s.
 *
 * <pre>java -cp cache-extension-client.jar:classes UnitTest</pre>
 */
public class UnitTest {

    interface Check {
        void run() throws Exception;
    }

    private static final Map<String, Check> CHECKS = new LinkedHashMap<>();
    private static final String TOKEN = "session-token-4f1b";
    private static final String SECRET = "s3cr3t-value-9c2e";

    private static void check(String name, Check check) {
        CHECKS.put(name, check);
    }

    public static void main(String[] args) {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(40_000);
                System.out.println("FAIL: the unit tests did not finish within 40 s");
                Runtime.getRuntime().halt(2);
            } catch (InterruptedException e) {
                // finished in time
            }
        });
        watchdog.setDaemon(true);
        watchdog.start();

        jsonChecks();
        httpChecks();
        refreshChecks();
        offlineChecks();
        nearCacheChecks();

        long started = System.nanoTime();
        int passed = 0;
        List<String> failed = new ArrayList<>();
        for (Map.Entry<String, Check> entry : CHECKS.entrySet()) {
            if (args.length > 0 && !entry.getKey().contains(args[0])) {
                continue;
            }
            long start = System.nanoTime();
            try {
                entry.getValue().run();
                passed++;
                System.out.println("ok " + entry.getKey() + " (" + (System.nanoTime() - start) / 1_000_000 + " ms)");
            } catch (Throwable e) {
                failed.add(entry.getKey());
                System.out.println("FAIL " + entry.getKey() + ": " + e);
            }
        }
        long ms = (System.nanoTime() - started) / 1_000_000;
        System.out.println((failed.isEmpty() ? "passed: " : "FAILED: ") + passed + " passed, " + failed.size()
                + " failed in " + ms + " ms");
        System.exit(failed.isEmpty() ? 0 : 1);
    }

    // ---------------------------------------------------------------------------------------------- JSON

    private static void jsonChecks() {
        check("json: objects keep member order, arrays, literals", () -> {
            Object parsed = Json.parse(" {\"b\": [1, true, false, null, \"x\"], \"a\": {}, \"c\": []} ");
            Map<String, Object> map = asMap(parsed);
            equal(Arrays.asList("b", "a", "c"), new ArrayList<>(map.keySet()));
            equal(LinkedHashMap.class, map.getClass());
            List<?> b = (List<?>) map.get("b");
            equal(ArrayList.class, b.getClass());
            equal(new BigDecimal("1"), b.get(0));
            equal(Boolean.TRUE, b.get(1));
            equal(Boolean.FALSE, b.get(2));
            equal(null, b.get(3));
            equal("x", b.get(4));
            equal(Collections.emptyMap(), map.get("a"));
            equal(Collections.emptyList(), map.get("c"));
        });
        check("json: top-level scalars and surrounding whitespace", () -> {
            equal("a", Json.parse("\"a\""));
            equal(null, Json.parse("null"));
            equal(Boolean.TRUE, Json.parse("\t\r\n true \n"));
            equal(new BigDecimal("-0"), Json.parse("-0"));
        });
        check("json: numbers are exact BigDecimals", () -> {
            String big = "123456789012345678901234567890.123456789012345678901234567890";
            equal(new BigDecimal(big), Json.parse(big));
            equal(big, ((BigDecimal) Json.parse(big)).toPlainString());
            equal(new BigDecimal("9007199254740993"), Json.parse("9007199254740993")); // 2^53 + 1
            equal(new BigDecimal("1E+400"), Json.parse("1e400"));
            equal(new BigDecimal("-2.5E-7"), Json.parse("-2.5E-7"));
            equal(new BigDecimal("1E+2"), Json.parse("1E+2"));
            equal(new BigDecimal("0.10"), Json.parse("0.10")); // scale kept: "0.10" stays 0.10
        });
        check("json: string escapes", () -> {
            equal("\" \\ / \b \f \n \r \t", Json.parse("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""));
            equal("é\u0000\u001f", Json.parse("\"\\u00e9\\u0000\\u001F\""));
            equal("é and ü raw", Json.parse("\"é and ü raw\""));
        });
        check("json: surrogate pairs, escaped and raw", () -> {
            String s = (String) Json.parse("\"\\ud83d\\ude00|\\uD834\\uDD1E|😀\"");
            equal(0x1F600, s.codePointAt(0));
            equal(0x1D11E, s.codePointAt(3));
            equal(0x1F600, s.codePointAt(6));
            equal(8, s.length());
        });
        check("json: a repeated member keeps the last value", () ->
                equal(new BigDecimal("2"), asMap(Json.parse("{\"a\": 1, \"a\": 2}")).get("a")));
        check("json: nesting up to 512 levels, not 513", () -> {
            Json.parse("[".repeat(512) + "]".repeat(512));
            Json.parse("{\"a\":".repeat(511) + "[]" + "}".repeat(511));
            rejects("[".repeat(513) + "]".repeat(513));
            rejects("{\"a\":".repeat(513) + "1" + "}".repeat(513));
            rejects("[".repeat(100_000)); // an error, not a StackOverflowError
        });
        check("json: malformed inputs are rejected", () -> {
            String[] bad = {"", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "{\"a\" 1}", "{\"a\":}",
                "{1:2}", "{'a':1}", "[1 2]", "[]]", "{}{}", "1 2", "01", "-01", "1.", ".5", "+1", "-", "1e", "1e+",
                "0x10", "1_000", "NaN", "Infinity", "-Infinity", "tru", "nul", "True", "nulll", "'a'", "\"abc",
                "\"\\x\"", "\"\\u12G4\"", "\"\\u00e\"", "\"\\u", "\"\\", "\"a\nb\"", "\"tab\there\"",
                "\uFEFF1", "\u00a01", "/* c */1", "[1]x", "1e999999999999", "\"\\u\u0660\u0660\u0660\u0660\""};
            for (String text : bad) {
                rejects(text);
            }
        });
        check("json: parse errors name an offset, never the text", () -> {
            try {
                Json.parse("{\"password\": \"" + SECRET + "\" x}");
                throw new AssertionError("accepted");
            } catch (IllegalArgumentException e) {
                contains(e.getMessage(), "offset");
                notContains(e.getMessage(), SECRET);
            }
        });
        check("json: write compact objects, arrays, scalars", () -> {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("s", "x");
            map.put("n", 1);
            map.put("l", 2L);
            map.put("d", 2.5);
            map.put("b", true);
            map.put("z", null);
            map.put("list", Arrays.asList(1, "two", null));
            map.put("arr", new int[] {1, 2});
            map.put("objs", new Object[] {Collections.emptyMap(), new ArrayList<>()});
            equal("{\"s\":\"x\",\"n\":1,\"l\":2,\"d\":2.5,\"b\":true,\"z\":null,\"list\":[1,\"two\",null],"
                    + "\"arr\":[1,2],\"objs\":[{},[]]}", Json.write(map));
            equal("null", Json.write(null));
            equal("\"c\"", Json.write('c'));
        });
        check("json: write numbers exactly", () -> {
            equal("123456789012345678901234567890.000000000000000000001",
                    Json.write(new BigDecimal("123456789012345678901234567890.000000000000000000001")));
            equal("123456789012345678901234567890", Json.write(new BigInteger("123456789012345678901234567890")));
            equal(new BigDecimal("1E+400"), Json.parse(Json.write(new BigDecimal("1E+400"))));
            equal("1.0E10", Json.write(1e10));
            equal(new BigDecimal("1.0E10"), Json.parse(Json.write(1e10)));
            equal("-7", Json.write((short) -7));
            throwsIllegal(() -> Json.write(Double.NaN));
            throwsIllegal(() -> Json.write(Float.POSITIVE_INFINITY));
        });
        check("json: write escapes strings", () -> {
            equal("\"q\\\" b\\\\ s/ \\n\\r\\t\\b\\f \\u0000\\u001f \\u2028\"", Json.write("q\" b\\ s/ \n\r\t\b\f \u0000\u001f \u2028"));
            equal("\"é😀\"", Json.write("é😀")); // a well-formed pair stays as it is
            equal("\"\\ud83d|\\ude00\"", Json.write("\ud83d|\ude00")); // lone surrogates are escaped
            String tricky = "\"\\/\u0001\uffff😀 \ud800";
            equal(tricky, Json.parse(Json.write(tricky)));
        });
        check("json: write byte[] as base64", () -> {
            equal("\"AP8BAg==\"", Json.write(new byte[] {0, (byte) 0xff, 1, 2}));
            equal("{\"k\":\"\"}", Json.write(Collections.singletonMap("k", new byte[0])));
        });
        check("json: write refuses other types, non-String keys and cycles", () -> {
            throwsIllegal(() -> Json.write(new Object()));
            throwsIllegal(() -> Json.write(Collections.singletonMap(1, "x")));
            throwsIllegal(() -> Json.write(Collections.singletonMap(null, "x")));
            List<Object> cycle = new ArrayList<>();
            cycle.add(cycle);
            throwsIllegal(() -> Json.write(cycle));
        });
        check("json: write then parse round-trips", () -> {
            Object value = Json.parse("{\"a\":[1,2.50,-3e-5,{\"b\":null,\"c\":\"\\u0000é😀\"}],\"d\":true,\"e\":\"\"}");
            equal(value, Json.parse(Json.write(value)));
        });
    }

    // ---------------------------------------------------------------------------------------------- HTTP

    private static void httpChecks() {
        check("http: names are URL-encoded as query values (%20 for spaces)", () -> {
            try (FakeExtension fx = new FakeExtension(ok("v"))) {
                CacheClient client = client(fx).build();
                String[][] names = {
                    {"a b", "a%20b"}, {"a+b", "a%2Bb"}, {"x&y=z", "x%26y%3Dz"}, {"é", "%C3%A9"},
                    {"/aws/reference/secretsmanager/id", "%2Faws%2Freference%2Fsecretsmanager%2Fid"},
                    {"?#%", "%3F%23%25"}, {"😀", "%F0%9F%98%80"}, {"A-z_0.9*~", "A-z_0.9*%7E"},
                };
                for (String[] name : names) {
                    client.getParameter(name[0]);
                    Recorded r = fx.last();
                    equal("/parameters", r.path);
                    equal("name=" + name[1], r.rawQuery);
                    equal(name[0], URLDecoder.decode(r.rawQuery.substring(5), StandardCharsets.UTF_8));
                }
            }
        });
        check("http: routes for parameters, secrets and items", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> r.path.equals("/dynamodb")
                    ? new Reply(200, "application/json", "{\"id\":\"1\",\"n\":2.50}") : new Reply(200, "text/plain; charset=utf-8", "v"))) {
                CacheClient client = client(fx).build();
                equal("v", client.getParameter("p"));
                equal("/parameters", fx.last().path);
                equal("GET", fx.last().method);
                equal("v", client.getSecret("s"));
                equal("/secrets", fx.last().path);
                Map<String, Object> item = client.getItem("T-1");
                equal("/dynamodb", fx.last().path);
                equal("name=T-1", fx.last().rawQuery);
                equal("1", item.get("id"));
                equal(new BigDecimal("2.50"), item.get("n"));
            }
        });
        check("http: text is decoded as UTF-8", () -> {
            try (FakeExtension fx = new FakeExtension(ok("é😀 ü"))) {
                equal("é😀 ü", client(fx).build().getParameter("p"));
            }
        });
        check("http: token header, CACHE_EXTENSION_TOKEN before AWS_SESSION_TOKEN before AWS_CONTAINER_AUTHORIZATION_TOKEN", () -> {
            try (FakeExtension fx = new FakeExtension(ok("v"))) {
                String port = String.valueOf(fx.port());
                env(port, "ext-token", "session").build().getParameter("p");
                equal(Collections.singletonList("ext-token"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, "", "session").build().getParameter("p");
                equal(Collections.singletonList("session"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, null, "session").build().getParameter("p");
                equal(Collections.singletonList("session"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, "ext-token", "session").token("explicit").build().getParameter("p");
                equal(Collections.singletonList("explicit"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, null, null).build().getParameter("p");
                equal(null, fx.last().header("x-aws-parameters-secrets-token"));
                equal(null, fx.last().header("x-forwarded-for"));
                // Lambda SnapStart has no AWS_SESSION_TOKEN: the container credentials' token is the last resort.
                env(port, "ext-token", "session", "container").build().getParameter("p");
                equal(Collections.singletonList("ext-token"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, "", "session", "container").build().getParameter("p");
                equal(Collections.singletonList("session"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, null, null, "container").build().getParameter("p");
                equal(Collections.singletonList("container"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, "", "", "container").build().getParameter("p");
                equal(Collections.singletonList("container"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, null, null, "container").token("explicit").build().getParameter("p");
                equal(Collections.singletonList("explicit"), fx.last().header("x-aws-parameters-secrets-token"));
                env(port, "", "", "").build().getParameter("p");
                equal(null, fx.last().header("x-aws-parameters-secrets-token"));
                notContains(env(port, null, null, "container").build().toString(), "container");
            }
        });
        check("http: port from CACHE_EXTENSION_PORT, else 4000; bad values refused", () -> {
            contains(env(null, null, TOKEN).build().toString(), "127.0.0.1:4000");
            contains(env("4100", null, TOKEN).build().toString(), "127.0.0.1:4100");
            contains(env("4100", null, TOKEN).port(4200).build().toString(), "127.0.0.1:4200");
            throwsIllegal(() -> env("http", null, TOKEN).build());
            throwsIllegal(() -> env("70000", null, TOKEN).build());
            throwsIllegal(() -> CacheClient.builder().port(0));
            throwsIllegal(() -> CacheClient.builder().token("bad\r\ntoken"));
            throwsIllegal(() -> CacheClient.builder().token(""));
            throwsIllegal(() -> CacheClient.builder().timeout(Duration.ZERO));
            throwsIllegal(() -> CacheClient.builder().startupTimeout(Duration.ofMillis(-1)));
            notContains(CacheClient.builder().environment(Collections.emptyMap()).token(TOKEN).build().toString(), TOKEN);
        });
        check("http: connections are kept alive", () -> {
            try (FakeExtension fx = new FakeExtension(ok("v"))) {
                CacheClient client = client(fx).build();
                for (int i = 0; i < 5; i++) {
                    client.getParameter("p");
                }
                Set<Integer> ports = new HashSet<>();
                for (Recorded r : fx.requests) {
                    ports.add(r.remotePort);
                }
                equal(1, ports.size());
            }
        });
        check("http: 503 then 200 is retried", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> n < 2 ? json(503, "NotReady", "starting") : new Reply(200, "text/plain", "v"))) {
                long start = System.nanoTime();
                equal("v", client(fx).build().getParameter("p"));
                equal(3, fx.requests.size());
                below(start, 1000);
            }
        });
        check("http: 503 until the startup timeout is ExtensionUnavailableException", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> json(503, "NotReady", "starting"))) {
                long start = System.nanoTime();
                ExtensionUnavailableException e = expect(ExtensionUnavailableException.class,
                        () -> client(fx).startupTimeout(Duration.ofMillis(250)).build().getParameter("p"));
                long ms = (System.nanoTime() - start) / 1_000_000;
                if (ms < 250) {
                    throw new AssertionError("gave up after " + ms + " ms");
                }
                below(start, 1500);
                equal(503, e.status());
                equal("NotReady", e.code());
                if (fx.requests.size() < 3 || fx.requests.size() > 15) {
                    throw new AssertionError(fx.requests.size() + " attempts in 250 ms (backoff 10 ms doubling, cap 100)");
                }
            }
        });
        check("http: connection refused until the extension listens is retried", () ->
                equal("late", whenListening(ok("late"), client -> client.getParameter("p"))));
        check("http: unreachable after the startup timeout, message names port and name, not the token", () -> {
            int port;
            try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                port = probe.getLocalPort();
            }
            long start = System.nanoTime();
            ExtensionUnavailableException e = expect(ExtensionUnavailableException.class, () -> CacheClient.builder()
                    .environment(Collections.emptyMap()).port(port).token(TOKEN)
                    .startupTimeout(Duration.ofMillis(200)).build().getSecret("db/password"));
            below(start, 1500);
            equal(0, e.status());
            contains(e.getMessage(), "not reachable on 127.0.0.1:" + port);
            contains(e.getMessage(), "db/password");
            contains(e.getMessage(), "/secrets");
            noLeak(e, TOKEN);
        });
        check("http: a connection closed before any answer is retried", () -> {
            try (RawServer raw = new RawServer(1)) {
                // retried at once, even without a start-up window
                equal("after-reset", CacheClient.builder().environment(Collections.emptyMap()).port(raw.port()).token(TOKEN)
                        .startupTimeout(Duration.ZERO).build().getParameter("p"));
                if (raw.accepted.get() < 2) {
                    throw new AssertionError("not retried");
                }
            }
        });
        check("http: connections always closed without an answer: unavailable after the startup timeout", () -> {
            try (RawServer raw = new RawServer(Integer.MAX_VALUE)) {
                long start = System.nanoTime();
                ExtensionUnavailableException e = expect(ExtensionUnavailableException.class, () -> CacheClient.builder()
                        .environment(Collections.emptyMap()).port(raw.port()).token(TOKEN)
                        .startupTimeout(Duration.ofMillis(200)).build().getParameter("p"));
                below(start, 1500);
                equal(0, e.status());
                contains(e.getMessage(), "not reachable");
                if (raw.accepted.get() < 3) {
                    throw new AssertionError("only " + raw.accepted.get() + " attempts");
                }
            }
        });
        check("http: a slow answer is a timeout (ExtensionUnavailableException), not retried", () -> {
            CountDownLatch release = new CountDownLatch(1);
            try (FakeExtension fx = new FakeExtension((r, n) -> {
                try {
                    release.await(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return new Reply(200, "text/plain", "late");
            })) {
                long start = System.nanoTime();
                ExtensionUnavailableException e = expect(ExtensionUnavailableException.class,
                        () -> client(fx).timeout(Duration.ofMillis(200)).build().getParameter("slow"));
                below(start, 1000);
                contains(e.getMessage(), "200 ms");
                contains(e.getMessage(), "slow");
                equal(0, e.status());
                equal(1, fx.requests.size());
            } finally {
                release.countDown();
            }
        });
        check("http: error statuses map to exception classes; nothing but 503 is retried", () -> {
            Object[][] table = {
                {404, "NotConfigured", NotFoundException.class},
                {404, "ResourceNotFoundException", NotFoundException.class},
                {502, "AccessDeniedException", UpstreamException.class},
                {504, "Timeout", UpstreamException.class},
                {400, "BadRequest", CacheExtensionException.class},
                {401, "MissingToken", CacheExtensionException.class},
                {403, "InvalidToken", CacheExtensionException.class},
                {405, "MethodNotAllowed", CacheExtensionException.class},
                {500, "InternalError", CacheExtensionException.class},
            };
            statusesMap(table, client -> client.getParameter("p/q"), "/parameters");
        });
        check("http: retryAfter() on any error answer that has one, else null", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> json(r.rawQuery.endsWith("gone") ? 404 : 503, "X", "x")
                    .header("Retry-After", r.rawQuery.endsWith("gone") ? "3" : "2"))) {
                equal(Duration.ofSeconds(3), expect(NotFoundException.class, () -> client(fx).build().getParameter("gone")).retryAfter());
                ExtensionUnavailableException e = expect(ExtensionUnavailableException.class,
                        () -> client(fx).startupTimeout(Duration.ofMillis(50)).build().getParameter("starting"));
                equal(503, e.status());
                equal(Duration.ofSeconds(2), e.retryAfter());
            }
            try (FakeExtension fx = new FakeExtension((r, n) -> json(502, "ThrottlingException", "x"))) {
                equal(null, expect(UpstreamException.class, () -> client(fx).build().getParameter("p")).retryAfter());
            }
            equal(null, new CacheExtensionException("m", 429, "RateLimited").retryAfter());
        });
        check("http: an error body that is not the extension's JSON gives no code", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(500, "text/html", "<h1>" + SECRET + "</h1>"))) {
                CacheExtensionException e = expect(CacheExtensionException.class, () -> client(fx).build().getParameter("p"));
                equal(500, e.status());
                equal(null, e.code());
                noLeak(e, SECRET);
            }
        });
        check("http: an error message that echoes the token is not repeated", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> json(403, "InvalidToken", "you sent " + TOKEN))) {
                CacheExtensionException e = expect(CacheExtensionException.class, () -> client(fx).build().getParameter("p"));
                equal(403, e.status());
                noLeak(e, TOKEN);
            }
        });
        check("http: a binary secret needs Transform.BINARY", () -> {
            byte[] bytes = {0, (byte) 0xff, 1, 2};
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/octet-stream", bytes))) {
                CacheClient client = client(fx).build();
                CacheExtensionException e = expect(CacheExtensionException.class, () -> client.getSecret("bin"));
                equal(CacheExtensionException.class, e.getClass());
                contains(e.getMessage(), "Transform.BINARY");
                contains(e.getMessage(), "bin");
                byte[] got = client.getSecret("bin", Transform.BINARY);
                equal(true, Arrays.equals(bytes, got));
            }
        });
        check("http: BINARY decodes base64 text; invalid base64 is an error without the text", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "text/plain; charset=utf-8",
                    r.rawQuery.endsWith("good") ? "AP8BAg==" : SECRET + "!"))) {
                CacheClient client = client(fx).build();
                byte[] got = client.getParameter("good", Transform.BINARY);
                equal(true, Arrays.equals(new byte[] {0, (byte) 0xff, 1, 2}, got));
                CacheExtensionException e = expect(CacheExtensionException.class, () -> client.getParameter("bad", Transform.BINARY));
                contains(e.getMessage(), "base64");
                noLeak(e, SECRET);
            }
        });
        check("http: JSON transform; a parse failure is an error without the text", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "text/plain; charset=utf-8",
                    r.rawQuery.endsWith("good") ? "{\"user\": \"admin\", \"port\": 5432}" : "{\"password\": \"" + SECRET + "\""))) {
                CacheClient client = client(fx).build();
                Map<String, Object> good = client.getSecret("good", Transform.JSON);
                equal("admin", good.get("user"));
                equal(new BigDecimal(5432), good.get("port"));
                CacheExtensionException e = expect(CacheExtensionException.class, () -> client.getSecret("bad", Transform.JSON));
                equal(CacheExtensionException.class, e.getClass());
                contains(e.getMessage(), "not valid JSON");
                noLeak(e, SECRET);
            }
        });
        check("http: an item that is not a JSON object is an error", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/json", "[1]"))) {
                expect(CacheExtensionException.class, () -> client(fx).build().getItem("T-1"));
            }
        });
        check("http: concurrent calls from many threads", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "text/plain", "v-" + r.rawQuery))) {
                CacheClient client = client(fx).build();
                ExecutorService pool = Executors.newFixedThreadPool(8, UnitTest::daemon);
                try {
                    List<Future<Boolean>> results = new ArrayList<>();
                    for (int i = 0; i < 200; i++) {
                        String name = "n" + i;
                        Callable<Boolean> call = () -> ("v-name=" + name).equals(client.getParameter(name));
                        results.add(pool.submit(call));
                    }
                    for (Future<Boolean> result : results) {
                        equal(true, result.get(10, TimeUnit.SECONDS));
                    }
                } finally {
                    pool.shutdownNow();
                }
                equal(200, fx.requests.size());
            }
        });
        check("http: getDefault is one shared client", () -> {
            ExecutorService pool = Executors.newFixedThreadPool(4, UnitTest::daemon);
            try {
                List<Future<CacheClient>> results = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    results.add(pool.submit(CacheClient::getDefault));
                }
                for (Future<CacheClient> result : results) {
                    if (result.get(5, TimeUnit.SECONDS) != CacheClient.getDefault()) {
                        throw new AssertionError("two default clients");
                    }
                }
            } finally {
                pool.shutdownNow();
            }
        });
    }

    // ---------------------------------------------------------------------------------------------- refresh

    private static final String REFRESHED = "{\"refreshed\": [{\"source\": \"parameters\", \"name\": \"a b\"}], \"failed\": []}";

    private static void refreshChecks() {
        check("refresh: POST /refresh with name, source, token and no body; the answer as a map", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/json", REFRESHED))) {
                CacheClient client = client(fx).build();
                Map<String, Object> result = client.refresh("a b", "parameters");
                Recorded r = fx.last();
                equal("POST", r.method);
                equal("/refresh", r.path);
                equal("name=a%20b&source=parameters", r.rawQuery);
                equal(Collections.singletonList(TOKEN), r.header("x-aws-parameters-secrets-token"));
                equal(Collections.singletonList("0"), r.header("content-length"));
                equal(Json.parse(REFRESHED), result);
                client.refresh("x&y=z");
                equal("name=x%26y%3Dz", fx.last().rawQuery);
                client.refresh("T-1", "dynamodb");
                equal("name=T-1&source=dynamodb", fx.last().rawQuery);
                client.refresh("s", "secrets");
                equal("name=s&source=secrets", fx.last().rawQuery);
                client.refreshAll();
                equal("POST", fx.last().method);
                equal("all=true", fx.last().rawQuery);
            }
        });
        check("refresh: an unknown source or a null name is refused before any request", () -> {
            try (FakeExtension fx = new FakeExtension(ok("{}"))) {
                CacheClient client = client(fx).build();
                IllegalArgumentException e = expect(IllegalArgumentException.class, () -> client.refresh("p", "ssm"));
                contains(e.getMessage(), "parameters, secrets, dynamodb");
                expect(IllegalArgumentException.class, () -> client.refresh("p", "Parameters"));
                expect(NullPointerException.class, () -> client.refresh(null));
                equal(0, fx.requests.size());
            }
        });
        check("refresh: error statuses map as for reads, 429 RateLimited too; nothing is retried, not even 503", () -> {
            Object[][] table = {
                {404, "NotConfigured", NotFoundException.class},
                {502, "ThrottlingException", UpstreamException.class},
                {504, "Timeout", UpstreamException.class},
                {429, "RateLimited", CacheExtensionException.class},
                {400, "BadRequest", CacheExtensionException.class},
                {503, "NotReady", CacheExtensionException.class},
            };
            statusesMap(table, client -> client.refresh("p/q"), "POST /refresh");
        });
        check("refresh: a connection closed before any answer is retried once, at once, never twice", () -> {
            try (RawServer raw = new RawServer(1, "application/json", REFRESHED)) {
                // even without a start-up window: the extension coalesces the repeat with a refresh that arrived
                equal(Json.parse(REFRESHED), CacheClient.builder().environment(Collections.emptyMap()).port(raw.port())
                        .token(TOKEN).startupTimeout(Duration.ZERO).build().refreshAll());
                equal(2, raw.accepted.get());
            }
            try (RawServer raw = new RawServer(Integer.MAX_VALUE)) {
                long start = System.nanoTime();
                ExtensionUnavailableException e = expect(ExtensionUnavailableException.class, () -> CacheClient.builder()
                        .environment(Collections.emptyMap()).port(raw.port()).token(TOKEN).build().refreshAll());
                below(start, 1000); // not retried through the 2 s start-up window as a GET is
                equal(0, e.status());
                equal(null, e.retryAfter());
                contains(e.getMessage(), "retried once");
                equal(2, raw.accepted.get());
                noLeak(e, TOKEN);
            }
        });
        check("refresh: a kept-alive connection the extension closed while idle is retried on a new one", () -> {
            try (KeepAliveServer server = new KeepAliveServer(REFRESHED)) {
                CacheClient client = CacheClient.builder().environment(Collections.emptyMap()).port(server.port())
                        .token(TOKEN).startupTimeout(Duration.ZERO).build();
                equal(Json.parse(REFRESHED), client.refresh("a b"));
                Thread.sleep(100); // idle, as between two invokes
                equal(Json.parse(REFRESHED), client.refreshAll());
                // the second went out on the kept-alive connection first, then once more on a new one
                equal(Arrays.asList(1, 1, 2), server.connections);
            }
        });
        check("refresh: 429 RateLimited gives retryAfter() from Retry-After in delta-seconds only", () -> {
            String[][] table = { // Retry-After (null: none), seconds (null: not set)
                {null, null}, {"7", "7"}, {"0", "0"}, {"007", "7"}, {" 12\t", "12"}, {"1.5", null}, {"-1", null},
                {"+3", null}, {"Wed, 21 Oct 2015 07:28:00 GMT", null}, {"soon", null}, {"", null}, {"7 s", null},
                {"0x10", null}, {"1e3", null}, {"99999999999999999999999", "2147483648"},
            };
            for (String[] row : table) {
                try (FakeExtension fx = new FakeExtension((r, n) -> json(429, "RateLimited", "retry in 6.2 s")
                        .header("Retry-After", row[0]))) {
                    CacheExtensionException e = expect(CacheExtensionException.class, () -> client(fx).build().refreshAll());
                    equal(CacheExtensionException.class, e.getClass());
                    equal(429, e.status());
                    equal("RateLimited", e.code());
                    equal(row[1] == null ? null : Duration.ofSeconds(Long.parseLong(row[1])), e.retryAfter());
                    equal(1, fx.requests.size());
                }
            }
        });
        check("refresh: connection refused until the extension listens is retried", () -> equal(Json.parse(REFRESHED),
                whenListening((r, n) -> new Reply(200, "application/json", REFRESHED), client -> client.refresh("a b"))));
        check("refresh: bounded by refreshTimeout (default 5 s), not by the read timeout", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> {
                try {
                    Thread.sleep(300);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return new Reply(200, "application/json", REFRESHED);
            })) {
                equal(Json.parse(REFRESHED), client(fx).timeout(Duration.ofMillis(100)).build().refresh("a b"));
                long start = System.nanoTime();
                ExtensionUnavailableException e = expect(ExtensionUnavailableException.class,
                        () -> client(fx).refreshTimeout(Duration.ofMillis(100)).build().refresh("slow"));
                below(start, 290);
                contains(e.getMessage(), "100 ms");
                equal(2, fx.requests.size());
                equal(Duration.ofSeconds(5), CacheClient.DEFAULT_REFRESH_TIMEOUT);
                throwsIllegal(() -> CacheClient.builder().refreshTimeout(Duration.ZERO));
            }
        });
        check("refresh: an answer that is not a JSON object is an error", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/json", "[]"))) {
                CacheExtensionException e = expect(CacheExtensionException.class, () -> client(fx).build().refreshAll());
                equal(CacheExtensionException.class, e.getClass());
            }
        });
    }

    // ---------------------------------------------------------------------------------------------- offline

    private static void offlineChecks() {
        check("offline: refresh does nothing and answers empty lists; the source is still checked", () -> {
            try (FakeExtension fx = new FakeExtension(ok("{}"))) {
                Map<String, Map<String, Object>> values = new HashMap<>();
                values.put("parameters", Collections.singletonMap("p", "v"));
                CacheClient client = client(fx).values(values).build();
                Map<String, Object> nothing = new LinkedHashMap<>();
                nothing.put("refreshed", Collections.emptyList());
                nothing.put("failed", Collections.emptyList());
                equal(nothing, client.refresh("p"));
                equal(nothing, client.refresh("not-among-them", "secrets"));
                equal(nothing, client.refreshAll());
                client.refreshAll().put("mutated", true);
                equal(nothing, client.refreshAll());
                expect(IllegalArgumentException.class, () -> client.refresh("p", "ssm"));
                equal(0, fx.requests.size());
            }
        });
        check("offline: builder values, transforms, no HTTP", () -> {
            try (FakeExtension fx = new FakeExtension(ok("from-http"))) {
                Map<String, Map<String, Object>> values = new HashMap<>();
                Map<String, Object> parameters = new HashMap<>();
                parameters.put("plain", "text");
                parameters.put("json", "{\"a\": [1, 2.5]}");
                parameters.put("b64", "AP8BAg==");
                parameters.put("object", Collections.singletonMap("k", 1));
                values.put("parameters", parameters);
                values.put("secrets", Collections.singletonMap("bin", new byte[] {1, 2, 3}));
                Map<String, Object> item = new LinkedHashMap<>();
                item.put("id", "1");
                item.put("n", 2);
                item.put("tags", Arrays.asList("a", "b"));
                values.put("dynamodb", Collections.singletonMap("T-1", item));
                CacheClient client = client(fx).values(values).build();

                equal("text", client.getParameter("plain"));
                Map<String, Object> json = client.getParameter("json", Transform.JSON);
                equal(Arrays.asList(new BigDecimal("1"), new BigDecimal("2.5")), json.get("a"));
                equal(true, Arrays.equals(new byte[] {0, (byte) 0xff, 1, 2}, client.getParameter("b64", Transform.BINARY)));
                equal("{\"k\":1}", client.getParameter("object"));
                equal(true, Arrays.equals(new byte[] {1, 2, 3}, client.getSecret("bin", Transform.BINARY)));
                contains(expect(CacheExtensionException.class, () -> client.getSecret("bin")).getMessage(), "Transform.BINARY");
                Map<String, Object> got = client.getItem("T-1");
                equal("1", got.get("id"));
                equal(new BigDecimal("2"), got.get("n")); // the same types as from the extension
                equal(Arrays.asList("a", "b"), got.get("tags"));
                got.put("id", "changed");
                equal("1", client.getItem("T-1").get("id")); // each call returns a fresh map
                item.put("id", "changed-later");
                equal("1", client.getItem("T-1").get("id")); // values were copied at build()
                equal(0, fx.requests.size());
            }
        });
        check("offline: a missing name is NotFound 404 NotConfigured", () -> {
            CacheClient client = CacheClient.builder().environment(Collections.emptyMap())
                    .values(Collections.singletonMap("parameters", Collections.singletonMap("a", (Object) "b"))).build();
            for (Check call : Arrays.<Check>asList(() -> client.getParameter("other"), () -> client.getSecret("a"),
                    () -> client.getItem("T-1"))) {
                NotFoundException e = expect(NotFoundException.class, call);
                equal(404, e.status());
                equal("NotConfigured", e.code());
            }
        });
        check("offline: invalid values are refused when building", () -> {
            throwsIllegal(() -> CacheClient.builder().values(Collections.singletonMap("params", Collections.emptyMap())).build());
            throwsIllegal(() -> CacheClient.builder().values(Collections.singletonMap("dynamodb",
                    Collections.singletonMap("T-1", (Object) "not a map"))).build());
        });
        check("offline: CACHE_EXTENSION_CLIENT_VALUES names a JSON file", () -> {
            Path file = Files.createTempFile("cache-client-values", ".json");
            try {
                Files.writeString(file, "{\"parameters\": {\"p\": \"from-file\", \"j\": \"[1]\"}, \"secrets\": {\"s\": \"S\"},"
                        + " \"dynamodb\": {\"T-1\": {\"id\": \"1\", \"n\": 12345678901234567890.5}}}", StandardCharsets.UTF_8);
                Map<String, String> env = new HashMap<>();
                env.put(CacheClient.VALUES_VARIABLE, file.toString());
                env.put("CACHE_EXTENSION_PORT", "not-a-port-but-unused");
                CacheClient client = CacheClient.builder().environment(env).build();
                equal("from-file", client.getParameter("p"));
                equal(Collections.singletonList(new BigDecimal(1)), client.getParameter("j", Transform.JSON));
                equal("S", client.getSecret("s"));
                equal(new BigDecimal("12345678901234567890.5"), client.getItem("T-1").get("n"));
                expect(NotFoundException.class, () -> client.getParameter("q"));
                // builder values win over the file
                equal("b", CacheClient.builder().environment(env)
                        .values(Collections.singletonMap("parameters", Collections.singletonMap("p", (Object) "b")))
                        .build().getParameter("p"));
            } finally {
                Files.deleteIfExists(file);
            }
        });
        check("offline: a bad values file is a clear error without its content", () -> {
            Path file = Files.createTempFile("cache-client-values", ".json");
            try {
                Map<String, String> env = Collections.singletonMap(CacheClient.VALUES_VARIABLE, file.toString());
                Files.writeString(file, "{\"secrets\": {\"s\": \"" + SECRET + "\"", StandardCharsets.UTF_8);
                CacheExtensionException e = expect(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build());
                contains(e.getMessage(), CacheClient.VALUES_VARIABLE);
                noLeak(e, SECRET);
                Files.writeString(file, "[\"" + SECRET + "\"]", StandardCharsets.UTF_8);
                noLeak(expect(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build()), SECRET);
                Files.writeString(file, "{\"other\": {}}", StandardCharsets.UTF_8);
                contains(expect(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build()).getMessage(), "other");
                Files.delete(file);
                contains(expect(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build()).getMessage(),
                        CacheClient.VALUES_VARIABLE);
            } finally {
                Files.deleteIfExists(file);
            }
        });
    }

    // ---------------------------------------------------------------------------------------------- near cache

    /**
     * A responder: 200 "v-" + the name ({"id": name} for an item), with this Cache-Control (null: none); POST
     * /refresh answers REFRESHED.
     */
    private static Responder kept(String cacheControl) {
        return (r, n) -> r.path.equals("/refresh") ? new Reply(200, "application/json", REFRESHED)
                : r.path.equals("/dynamodb") ? new Reply(200, "application/json", "{\"id\": \"" + r.rawQuery.substring(5) + "\"}")
                        .header("Cache-Control", cacheControl)
                : new Reply(200, "text/plain; charset=utf-8", "v-" + r.rawQuery.substring(5)).header("Cache-Control", cacheControl);
    }

    /** Reads the parameter and checks how many requests that took (0: from the near cache). */
    private static void reads(FakeExtension fx, CacheClient client, String name, int requests) {
        int before = fx.requests.size();
        equal("v-" + name, client.getParameter(name));
        equal(requests, fx.requests.size() - before);
    }

    private static void nearCacheChecks() {
        check("near cache: a max-age > 0 answer is kept by route and name; later reads make no request", () -> {
            try (FakeExtension fx = new FakeExtension(kept("max-age=60"))) {
                CacheClient client = client(fx).build();
                reads(fx, client, "p", 1);
                reads(fx, client, "p", 0);
                reads(fx, client, "p", 0);
                reads(fx, client, "q", 1);
                equal("v-p", client.getSecret("p")); // another route: its own entry
                equal(3, fx.requests.size());
                equal("v-p", client.getSecret("p"));
                equal(3, fx.requests.size());
            }
        });
        check("near cache: Cache-Control parsed leniently (commas, any case, whitespace, quotes)", () -> {
            for (String header : new String[] {"max-age=60", "MAX-AGE=60", " public ,  Max-Age=60 ", "max-age = 60",
                "private, max-age=\"60\"", "max-age=0060", "max-age=99999999999999999999", "immutable,max-age=1,max-age=60"}) {
                try (KeepAliveAnswers fx = new KeepAliveAnswers(name -> header)) {
                    CacheClient client = fx.client().build();
                    fx.reads(client, "p", 1);
                    fx.reads(client, "p", 0);
                }
            }
        });
        check("near cache: not kept: max-age=0, no header, no-store, no-cache, garbled max-age", () -> {
            for (String header : new String[] {null, "", "max-age=0", "max-age=00", "no-store", "max-age=60, no-store",
                "NO-CACHE, max-age=60", "max-age=60,no-cache", "max-age=abc", "max-age=", "max-age", "max-age=1.5",
                "max-age=-1", "max-age=+5", "max-age=6 0", "maxage=60", "s-maxage=60", "public", "max-age=60, max-age=x",
                "max-age=\u0661\u0662"}) {
                try (KeepAliveAnswers fx = new KeepAliveAnswers(name -> header)) {
                    CacheClient client = fx.client().build();
                    fx.reads(client, "p", 1);
                    fx.reads(client, "p", 1);
                }
            }
        });
        check("near cache: error answers are never kept, even with a max-age", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> json(n == 0 ? 404 : 502, "NotFound", "gone")
                    .header("Cache-Control", "max-age=60"))) {
                CacheClient client = client(fx).build();
                expect(NotFoundException.class, () -> client.getParameter("p"));
                expect(UpstreamException.class, () -> client.getParameter("p"));
                equal(2, fx.requests.size());
            }
        });
        check("near cache: a kept value expires after its max-age, counted from its arrival", () -> {
            try (FakeExtension fx = new FakeExtension(kept("max-age=1"))) {
                CacheClient client = client(fx).build();
                long arrived = System.nanoTime();
                reads(fx, client, "p", 1);
                reads(fx, client, "p", 0);
                long left = 1_000_000_000L - (System.nanoTime() - arrived);
                if (left > 50_000_000L) {
                    Thread.sleep(left / 1_000_000 - 50); // still within the second: kept
                    reads(fx, client, "p", 0);
                }
                Thread.sleep(Math.max(0, (1_100_000_000L - (System.nanoTime() - arrived)) / 1_000_000));
                reads(fx, client, "p", 1);
                reads(fx, client, "p", 0); // the new answer is kept again
            }
        });
        check("near cache: a transform reads the kept value, and every read returns a fresh object", () -> {
            String json = "{\"a\": [1, {\"b\": \"c\"}], \"n\": 2.50}";
            try (FakeExtension fx = new FakeExtension((r, n) -> (r.path.equals("/secrets")
                    ? new Reply(200, "application/octet-stream", new byte[] {0, 1, 2})
                    : r.rawQuery.equals("name=b64") ? new Reply(200, "text/plain; charset=utf-8", "AAEC")
                    : new Reply(200, "application/json", json)).header("Cache-Control", "max-age=60"))) {
                CacheClient client = client(fx).build();
                equal(json, client.getParameter("j"));
                Map<String, Object> first = client.getParameter("j", Transform.JSON); // the kept text, parsed
                equal(1, fx.requests.size());
                Object pristine = Json.parse(json);
                equal(pristine, first);
                first.put("x", "changed");
                ((List<?>) first.get("a")).clear();
                equal(pristine, client.getParameter("j", Transform.JSON));
                Map<String, Object> item = client.getItem("T-1");
                item.put("a", "changed");
                asMap(((List<?>) asMap(client.getItem("T-1")).get("a")).get(1)).put("b", "changed");
                equal(pristine, client.getItem("T-1"));
                byte[] bytes = client.getSecret("bin", Transform.BINARY);
                bytes[0] = 9;
                equal(Arrays.toString(new byte[] {0, 1, 2}), Arrays.toString(client.<byte[]>getSecret("bin", Transform.BINARY)));
                byte[] decoded = client.getParameter("b64", Transform.BINARY);
                decoded[0] = 9;
                equal(Arrays.toString(new byte[] {0, 1, 2}), Arrays.toString(client.<byte[]>getParameter("b64", Transform.BINARY)));
                equal(4, fx.requests.size()); // j, T-1, bin, b64: one request each
            }
        });
        check("near cache: refresh drops only that name, in its source or in every source, before the POST", () -> {
            try (FakeExtension fx = new FakeExtension(kept("max-age=60"))) {
                CacheClient client = client(fx).build();
                reads(fx, client, "p", 1);
                reads(fx, client, "q", 1);
                client.getSecret("p");
                client.getItem("T-1");
                int before = fx.requests.size();
                client.refresh("p", "secrets");
                equal(before + 1, fx.requests.size());
                reads(fx, client, "p", 0); // the parameter p stays
                reads(fx, client, "q", 0);
                equal("v-p", client.getSecret("p")); // the secret p went
                equal(before + 2, fx.requests.size());
                client.refresh("p"); // every source
                reads(fx, client, "p", 1);
                reads(fx, client, "q", 0);
                equal("v-p", client.getSecret("p"));
                equal(before + 5, fx.requests.size());
                client.getItem("T-1");
                equal(before + 5, fx.requests.size()); // another name, untouched
            }
        });
        check("near cache: refreshAll drops everything", () -> {
            try (FakeExtension fx = new FakeExtension(kept("max-age=60"))) {
                CacheClient client = client(fx).build();
                reads(fx, client, "p", 1);
                reads(fx, client, "p", 0);
                client.getSecret("s");
                client.refreshAll();
                equal("all=true", fx.last().rawQuery);
                reads(fx, client, "p", 1);
                int before = fx.requests.size();
                client.getSecret("s");
                equal(before + 1, fx.requests.size());
            }
        });
        check("near cache: a failed refresh still drops (429, extension gone)", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> r.path.equals("/refresh") ? json(429, "RateLimited", "later")
                    : new Reply(200, "text/plain; charset=utf-8", "v-" + r.rawQuery.substring(5)).header("Cache-Control", "max-age=60"))) {
                CacheClient client = client(fx).build();
                reads(fx, client, "p", 1);
                reads(fx, client, "q", 1);
                expect(CacheExtensionException.class, () -> client.refresh("p", "parameters"));
                reads(fx, client, "p", 1);
                reads(fx, client, "q", 0);
                expect(CacheExtensionException.class, client::refreshAll);
                reads(fx, client, "q", 1);
            }
        });
        check("near cache: an answer in flight during a refresh is not kept", () -> {
            CountDownLatch release = new CountDownLatch(1);
            try (FakeExtension fx = new FakeExtension((r, n) -> {
                if (n == 0) {
                    try {
                        release.await(5, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                return kept("max-age=60").reply(r, n);
            })) {
                CacheClient client = client(fx).build();
                ExecutorService pool = Executors.newSingleThreadExecutor(UnitTest::daemon);
                try {
                    Future<String> read = pool.submit(() -> client.getParameter("p"));
                    long start = System.nanoTime();
                    while (fx.requests.isEmpty() && System.nanoTime() - start < 5_000_000_000L) {
                        Thread.sleep(5);
                    }
                    client.refresh("p"); // while the GET waits for its answer
                    release.countDown();
                    equal("v-p", read.get(5, TimeUnit.SECONDS));
                } finally {
                    release.countDown();
                    pool.shutdownNow();
                }
                reads(fx, client, "p", 1); // the older answer was not kept
                reads(fx, client, "p", 0);
            }
        });
        check("near cache: off by the builder option or CACHE_EXTENSION_CLIENT_CACHE; the option wins", () -> {
            try (KeepAliveAnswers fx = new KeepAliveAnswers(name -> "max-age=60")) {
                String port = String.valueOf(fx.port());
                CacheClient off = fx.client().nearCache(false).build();
                fx.reads(off, "p", 1);
                fx.reads(off, "p", 1);
                for (String value : new String[] {"off", "OFF", "false", "False", "0", "no", "NO"}) {
                    CacheClient client = nearEnv(port, value).build();
                    fx.reads(client, "p", 1);
                    fx.reads(client, "p", 1);
                    CacheClient on = nearEnv(port, value).nearCache(true).build();
                    fx.reads(on, "p", 1);
                    fx.reads(on, "p", 0);
                }
                for (String value : new String[] {"on", "On", "true", "TRUE", "1", "yes", "Yes", ""}) {
                    CacheClient client = nearEnv(port, value).build();
                    fx.reads(client, "p", 1);
                    fx.reads(client, "p", 0);
                    CacheClient offByOption = nearEnv(port, value).nearCache(false).build();
                    fx.reads(offByOption, "p", 1);
                    fx.reads(offByOption, "p", 1);
                }
            }
        });
        check("near cache: a bad CACHE_EXTENSION_CLIENT_CACHE throws (status 0) naming the variable, not the value", () -> {
            for (String value : new String[] {"sometimes", " on", "off ", "enabled", "2", "y", "n", "t", "nein-" + SECRET}) {
                CacheExtensionException e = expect(CacheExtensionException.class, () -> nearEnv("4000", value).build());
                equal(CacheExtensionException.class, e.getClass());
                equal(0, e.status());
                equal(null, e.code());
                contains(e.getMessage(), "CACHE_EXTENSION_CLIENT_CACHE");
                contains(e.getMessage(), "on, off, true, false, 1, 0, yes, no");
                if (value.length() > 5) { // shorter ones occur in any sentence
                    noLeak(e, value.trim());
                }
                noLeak(e, TOKEN);
            }
        });
        check("near cache: at most 1,000 values; when full the expired go first, then the oldest", () -> {
            // HttpServer takes ~40 ms a request here (Nagle meets a delayed ACK): a fast double instead.
            try (KeepAliveAnswers fx = new KeepAliveAnswers(name -> name.equals("short") ? "max-age=1" : "max-age=60")) {
                CacheClient client = fx.client().build();
                long arrived = System.nanoTime();
                fx.reads(client, "short", 1);
                for (int i = 0; i < 999; i++) {
                    fx.reads(client, "n" + i, 1);
                }
                Thread.sleep(Math.max(0, (1_050_000_000L - (System.nanoTime() - arrived)) / 1_000_000));
                fx.reads(client, "extra", 1); // full: the expired "short" goes, nothing else
                for (int i = 0; i < 999; i++) {
                    fx.reads(client, "n" + i, 0);
                }
                fx.reads(client, "extra2", 1); // full, none expired: the oldest, n0, goes
                for (int i = 1; i < 999; i++) {
                    fx.reads(client, "n" + i, 0);
                }
                fx.reads(client, "extra", 0);
                fx.reads(client, "extra2", 0);
                fx.reads(client, "n0", 1); // and takes the place of the next oldest, n1
                fx.reads(client, "n2", 0);
                fx.reads(client, "n1", 1);
            }
        });
        check("near cache: substituted values have none and are unchanged", () -> {
            Map<String, Map<String, Object>> values = new LinkedHashMap<>();
            values.put("parameters", Collections.singletonMap("j", Collections.singletonMap("a", 1)));
            CacheClient client = CacheClient.builder().environment(Collections.singletonMap("CACHE_EXTENSION_CLIENT_CACHE", "on"))
                    .values(values).build();
            Map<String, Object> first = client.getParameter("j", Transform.JSON);
            first.put("a", 2);
            equal(new BigDecimal("1"), asMap(client.getParameter("j", Transform.JSON)).get("a"));
            equal(Json.parse("{\"refreshed\": [], \"failed\": []}"), client.refresh("j"));
        });
        check("near cache: speed of a repeated read of one kept name (printed)", () -> {
            try (FakeExtension fx = new FakeExtension((r, n) -> (r.rawQuery.equals("name=j")
                    ? new Reply(200, "application/json", "{\"url\": \"https://example.com\", \"retries\": 3, \"on\": true}")
                    : new Reply(200, "text/plain; charset=utf-8", "https://example.com/some/setting"))
                    .header("Cache-Control", "max-age=600"))) {
                CacheClient client = client(fx).build();
                client.getParameter("p");
                client.getParameter("p");
                equal(1, fx.requests.size()); // kept: what follows measures the near cache
                String text = percentiles(() -> client.getParameter("p"));
                String parsed = percentiles(() -> client.getParameter("j", Transform.JSON));
                equal(2, fx.requests.size());
                System.out.println("near cache read, 200,000 after a 100,000 warm-up: text " + text + "; JSON-parsed " + parsed);
            }
        });
    }

    /** p50 and p99 of one call, in µs, over 200,000 calls after 100,000 uncounted ones. */
    private static String percentiles(Check call) throws Exception {
        for (int i = 0; i < 100_000; i++) {
            call.run();
        }
        long[] took = new long[200_000];
        for (int i = 0; i < took.length; i++) {
            long start = System.nanoTime();
            call.run();
            took[i] = System.nanoTime() - start;
        }
        Arrays.sort(took);
        return String.format(Locale.ROOT, "p50 %.2f µs, p99 %.2f µs", took[took.length / 2] / 1000.0,
                took[took.length * 99 / 100] / 1000.0);
    }

    /** A builder of a client of this port reading CACHE_EXTENSION_CLIENT_CACHE=value and the test token only. */
    private static CacheClient.Builder nearEnv(String port, String value) {
        Map<String, String> env = new HashMap<>();
        env.put("CACHE_EXTENSION_PORT", port);
        env.put("AWS_SESSION_TOKEN", TOKEN);
        env.put("CACHE_EXTENSION_CLIENT_CACHE", value);
        return CacheClient.builder().environment(env);
    }

    // ---------------------------------------------------------------------------------------------- helpers

    interface Call<T> {
        T on(CacheClient client);
    }

    /** Each {status, code, exception class} row answered by a test double: what the call throws, after one request. */
    private static void statusesMap(Object[][] table, Call<?> call, String route) throws Exception {
        for (Object[] row : table) {
            int status = (Integer) row[0];
            String code = (String) row[1];
            try (FakeExtension fx = new FakeExtension((r, n) -> json(status, code, "explained"))) {
                CacheExtensionException e = expect(CacheExtensionException.class, () -> call.on(client(fx).build()));
                equal(row[2], e.getClass());
                equal(status, e.status());
                equal(code, e.code());
                equal(1, fx.requests.size());
                contains(e.getMessage(), route);
                contains(e.getMessage(), "p/q");
                contains(e.getMessage(), String.valueOf(status));
                contains(e.getMessage(), code);
            }
        }
    }

    /** The call on a port nothing listens on yet, where a test double with this responder starts 300 ms later. */
    private static <T> T whenListening(Responder responder, Call<T> call) throws Exception {
        int port;
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = probe.getLocalPort();
        }
        CacheClient client = CacheClient.builder().environment(Collections.emptyMap()).port(port).token(TOKEN)
                .startupTimeout(Duration.ofSeconds(5)).build();
        ExecutorService pool = Executors.newSingleThreadExecutor(UnitTest::daemon);
        try {
            Future<T> result = pool.submit(() -> call.on(client));
            Thread.sleep(300);
            if (result.isDone()) {
                throw new AssertionError("answered before the extension listened");
            }
            try (FakeExtension fx = new FakeExtension(responder, port)) {
                T value = result.get(5, TimeUnit.SECONDS);
                equal(1, fx.requests.size());
                return value;
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static CacheClient.Builder client(FakeExtension fx) {
        return env(String.valueOf(fx.port()), null, TOKEN);
    }

    /** A builder reading the given environment only (null: unset). */
    private static CacheClient.Builder env(String port, String extensionToken, String sessionToken) {
        return env(port, extensionToken, sessionToken, null);
    }

    /** A builder reading the given environment only (null: unset), AWS_CONTAINER_AUTHORIZATION_TOKEN included. */
    private static CacheClient.Builder env(String port, String extensionToken, String sessionToken, String containerToken) {
        Map<String, String> env = new HashMap<>();
        if (containerToken != null) {
            env.put("AWS_CONTAINER_AUTHORIZATION_TOKEN", containerToken);
        }
        if (port != null) {
            env.put("CACHE_EXTENSION_PORT", port);
        }
        if (extensionToken != null) {
            env.put("CACHE_EXTENSION_TOKEN", extensionToken);
        }
        if (sessionToken != null) {
            env.put("AWS_SESSION_TOKEN", sessionToken);
        }
        return CacheClient.builder().environment(env);
    }

    private static Responder ok(String text) {
        return (r, n) -> new Reply(200, "text/plain; charset=utf-8", text);
    }

    private static Reply json(int status, String code, String message) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("error", code);
        body.put("message", message);
        return new Reply(status, "application/json", Json.write(body));
    }

    private static Thread daemon(Runnable r) {
        Thread t = new Thread(r);
        t.setDaemon(true);
        return t;
    }

    private static void equal(Object want, Object got) {
        boolean same = want == null ? got == null : want.equals(got);
        if (!same) {
            throw new AssertionError("expected " + want + ", got " + got);
        }
    }

    private static void contains(String text, String part) {
        if (text == null || !text.contains(part)) {
            throw new AssertionError("'" + text + "' does not contain '" + part + "'");
        }
    }

    private static void notContains(String text, String part) {
        if (text != null && text.contains(part)) {
            throw new AssertionError("a message contains what it must not");
        }
    }

    private static void noLeak(Throwable e, String secret) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            notContains(t.getMessage(), secret);
            notContains(t.toString(), secret);
        }
    }

    private static void below(long startNanos, long ms) {
        long took = (System.nanoTime() - startNanos) / 1_000_000;
        if (took >= ms) {
            throw new AssertionError("took " + took + " ms, expected under " + ms);
        }
    }

    private static void rejects(String text) {
        try {
            Object value = Json.parse(text);
            throw new AssertionError("accepted invalid JSON " + describe(text) + " as " + describe(String.valueOf(value)));
        } catch (IllegalArgumentException e) {
            if (!e.getMessage().startsWith("invalid JSON at offset ")) {
                throw new AssertionError("unexpected message for " + describe(text) + ": " + e.getMessage());
            }
        }
    }

    private static String describe(String text) {
        String s = text.length() > 40 ? text.substring(0, 40) + "..." : text;
        StringBuilder out = new StringBuilder("<");
        for (char c : s.toCharArray()) {
            out.append(c < 0x20 || c > 0x7e ? String.format(Locale.ROOT, "\\u%04x", (int) c) : String.valueOf(c));
        }
        return out.append('>').toString();
    }

    private static void throwsIllegal(Check check) throws Exception {
        expect(IllegalArgumentException.class, check);
    }

    private static <E extends Throwable> E expect(Class<E> type, Check check) throws Exception {
        try {
            check.run();
        } catch (Throwable e) {
            if (type.isInstance(e)) {
                return type.cast(e);
            }
            throw new AssertionError("expected " + type.getSimpleName() + ", got " + e, e);
        }
        throw new AssertionError("expected " + type.getSimpleName() + ", got no exception");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> asMap(Object value) {
        return (Map<String, Object>) value;
    }

    // ---------------------------------------------------------------------------------------------- doubles

    /** One request as the test double received it. */
    static final class Recorded {
        final String method;
        final String path;
        final String rawQuery;
        final Map<String, List<String>> headers; // lower-case names
        final int remotePort;

        Recorded(HttpExchange exchange) {
            method = exchange.getRequestMethod();
            path = exchange.getRequestURI().getRawPath();
            rawQuery = exchange.getRequestURI().getRawQuery();
            headers = new HashMap<>();
            for (Map.Entry<String, List<String>> h : exchange.getRequestHeaders().entrySet()) {
                headers.put(h.getKey().toLowerCase(Locale.ROOT), new ArrayList<>(h.getValue()));
            }
            remotePort = exchange.getRemoteAddress().getPort();
        }

        List<String> header(String name) {
            return headers.get(name);
        }
    }

    static final class Reply {
        final int status;
        final String contentType;
        final byte[] body;
        final Map<String, String> headers = new LinkedHashMap<>();

        Reply(int status, String contentType, String body) {
            this(status, contentType, body.getBytes(StandardCharsets.UTF_8));
        }

        Reply(int status, String contentType, byte[] body) {
            this.status = status;
            this.contentType = contentType;
            this.body = body;
        }

        /** This reply with one more header (a null value: none). */
        Reply header(String name, String value) {
            if (value != null) {
                headers.put(name, value);
            }
            return this;
        }
    }

    interface Responder {
        /** The reply to the n-th request (from 0). */
        Reply reply(Recorded request, int n);
    }

    /** A test double of the extension's HTTP surface on a loopback port, recording every request. */
    static final class FakeExtension implements AutoCloseable {
        final List<Recorded> requests = Collections.synchronizedList(new ArrayList<>());
        private final HttpServer server;
        private final ExecutorService executor = Executors.newFixedThreadPool(8, UnitTest::daemon);
        private final Responder responder;
        private final AtomicInteger count = new AtomicInteger();

        FakeExtension(Responder responder) throws IOException {
            this(responder, 0);
        }

        FakeExtension(Responder responder, int port) throws IOException {
            this.responder = responder;
            server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 0);
            server.createContext("/", this::handle);
            server.setExecutor(executor);
            server.start();
        }

        int port() {
            return server.getAddress().getPort();
        }

        Recorded last() {
            synchronized (requests) {
                return requests.get(requests.size() - 1);
            }
        }

        private void handle(HttpExchange exchange) throws IOException {
            try {
                exchange.getRequestBody().readAllBytes();
                Recorded recorded = new Recorded(exchange);
                requests.add(recorded);
                Reply reply = responder.reply(recorded, count.getAndIncrement());
                exchange.getResponseHeaders().set("Content-Type", reply.contentType);
                for (Map.Entry<String, String> header : reply.headers.entrySet()) {
                    exchange.getResponseHeaders().set(header.getKey(), header.getValue());
                }
                exchange.sendResponseHeaders(reply.status, reply.body.length == 0 ? -1 : reply.body.length);
                if (reply.body.length > 0) {
                    try (OutputStream out = exchange.getResponseBody()) {
                        out.write(reply.body);
                    }
                }
            } finally {
                exchange.close();
            }
        }

        @Override
        public void close() {
            server.stop(0);
            executor.shutdownNow();
        }
    }

    /**
     * A raw loopback server that closes its first {@code closes} connections as soon as a request arrives,
     * without an answer (like an extension whose kept-alive connection went away), then answers normally.
     */
    static final class RawServer implements AutoCloseable {
        final AtomicInteger accepted = new AtomicInteger();
        private final ServerSocket socket;
        private final Thread thread;
        private final int closes;
        private final String contentType;
        private final byte[] body;

        RawServer(int closes) throws IOException {
            this(closes, "text/plain; charset=utf-8", "after-reset");
        }

        RawServer(int closes, String contentType, String body) throws IOException {
            this.closes = closes;
            this.contentType = contentType;
            this.body = body.getBytes(StandardCharsets.UTF_8);
            socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            thread = new Thread(this::serve);
            thread.setDaemon(true);
            thread.start();
        }

        int port() {
            return socket.getLocalPort();
        }

        private void serve() {
            while (!socket.isClosed()) {
                try (Socket connection = socket.accept()) {
                    connection.setSoTimeout(5000);
                    InputStream in = connection.getInputStream();
                    readHead(in);
                    if (accepted.incrementAndGet() <= closes) {
                        continue; // closed without a byte of answer
                    }
                    OutputStream out = connection.getOutputStream();
                    out.write(("HTTP/1.1 200 OK\r\nContent-Type: " + contentType + "\r\nContent-Length: "
                            + body.length + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                    out.write(body);
                    out.flush();
                } catch (IOException e) {
                    // closed by close(), or a client gone: keep serving until closed
                }
            }
        }

        /** Reads up to the end of a request head; false when the connection ended first. */
        static boolean readHead(InputStream in) throws IOException {
            int matched = 0;
            byte[] end = {'\r', '\n', '\r', '\n'};
            while (matched < 4) {
                int b = in.read();
                if (b < 0) {
                    return false;
                }
                matched = b == end[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
            }
            return true;
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    /**
     * A raw loopback server like an extension that closed a kept-alive connection while it was idle: it answers
     * the first request and keeps that connection open, then closes it as soon as the next request arrives on it,
     * without an answer; every later connection gets one answer (and is closed). Deterministic, unlike a server
     * that closes an idle connection on a timer: HttpClient drops a pooled connection it sees closed, so only a
     * close that meets the request shows the failure.
     */
    static final class KeepAliveServer implements AutoCloseable {
        final AtomicInteger requests = new AtomicInteger();
        final List<Integer> connections = Collections.synchronizedList(new ArrayList<>()); // per request, from 1
        private final ServerSocket socket;
        private final byte[] body;

        KeepAliveServer(String body) throws IOException {
            this.body = body.getBytes(StandardCharsets.UTF_8);
            socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            Thread thread = new Thread(this::serve);
            thread.setDaemon(true);
            thread.start();
        }

        int port() {
            return socket.getLocalPort();
        }

        private void serve() {
            int accepted = 0;
            while (!socket.isClosed()) {
                try (Socket connection = socket.accept()) {
                    accepted++;
                    connection.setSoTimeout(5000);
                    InputStream in = connection.getInputStream();
                    OutputStream out = connection.getOutputStream();
                    boolean first = accepted == 1;
                    while (RawServer.readHead(in)) {
                        requests.incrementAndGet();
                        connections.add(accepted);
                        if (first && connections.size() > 1) {
                            break; // the kept-alive connection, closed under the request that reused it
                        }
                        out.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + body.length
                                + (first ? "" : "\r\nConnection: close") + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                        out.write(body);
                        out.flush();
                        if (!first) {
                            break;
                        }
                    }
                } catch (IOException e) {
                    // closed by close(), or a client gone: keep serving until closed
                }
            }
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    /**
     * A fast test double for many requests: answers every GET on a kept-alive connection with "v-" + the name
     * and the Cache-Control its function gives for the name, head and body in one write; counts the requests.
     */
    static final class KeepAliveAnswers implements AutoCloseable {
        final AtomicInteger requests = new AtomicInteger();
        private final ServerSocket socket;
        private final java.util.function.Function<String, String> cacheControl;

        KeepAliveAnswers(java.util.function.Function<String, String> cacheControl) throws IOException {
            this.cacheControl = cacheControl;
            socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            daemon(() -> {
                while (!socket.isClosed()) {
                    try {
                        Socket connection = socket.accept();
                        daemon(() -> serve(connection)).start();
                    } catch (IOException e) {
                        // closed by close()
                    }
                }
            }).start();
        }

        int port() {
            return socket.getLocalPort();
        }

        CacheClient.Builder client() {
            return CacheClient.builder().environment(Collections.emptyMap()).port(port()).token(TOKEN);
        }

        /** Reads the parameter and checks how many requests that took (0: from the near cache). */
        void reads(CacheClient client, String name, int count) {
            int before = requests.get();
            equal("v-" + name, client.getParameter(name));
            equal(count, requests.get() - before);
        }

        private void serve(Socket connection) {
            try (Socket c = connection) {
                c.setTcpNoDelay(true);
                c.setSoTimeout(5000);
                InputStream in = c.getInputStream();
                OutputStream out = c.getOutputStream();
                while (true) {
                    StringBuilder head = new StringBuilder();
                    int b;
                    while (!(head.length() >= 4 && head.substring(head.length() - 4).equals("\r\n\r\n")) && (b = in.read()) >= 0) {
                        head.append((char) b);
                    }
                    if (!head.toString().endsWith("\r\n\r\n")) {
                        return;
                    }
                    String target = head.substring(head.indexOf(" ") + 1, head.indexOf(" HTTP/"));
                    String name = URLDecoder.decode(target.substring(target.indexOf("name=") + 5), StandardCharsets.UTF_8);
                    requests.incrementAndGet();
                    byte[] body = ("v-" + name).getBytes(StandardCharsets.UTF_8);
                    String header = cacheControl.apply(name);
                    byte[] answer = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            + (header == null ? "" : "Cache-Control: " + header + "\r\n") + "Content-Length: " + body.length + "\r\n\r\n" + "v-" + name)
                            .getBytes(StandardCharsets.UTF_8);
                    out.write(answer);
                    out.flush();
                }
            } catch (IOException e) {
                // the client went away, or close()
            }
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }
}
