package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.asMap;
import static dev.cacheextension.client.FakeExtension.json;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.cacheextension.client.FakeExtension.Reply;
import dev.cacheextension.client.FakeExtension.Responder;

import java.math.BigDecimal;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/** The client's near cache: which answers it keeps (Cache-Control max-age), for how long, how many, as what. */
@Timeout(30)
class NearCacheTest {

    /**
     * A responder: 200 "v-" + the name ({"id": name} for an item), with this Cache-Control (null: none); POST
     * /refresh answers RefreshTest.REFRESHED.
     */
    static Responder kept(String cacheControl) {
        return (r, n) -> r.path.equals("/refresh") ? new Reply(200, "application/json", RefreshTest.REFRESHED)
                : r.path.equals("/dynamodb") ? new Reply(200, "application/json", "{\"id\": \"" + r.rawQuery.substring(5) + "\"}")
                        .header("Cache-Control", cacheControl)
                : new Reply(200, "text/plain; charset=utf-8", "v-" + r.rawQuery.substring(5)).header("Cache-Control", cacheControl);
    }

    @Test
    @DisplayName("near cache: a max-age > 0 answer is kept by route and name; later reads make no request")
    void keptByRouteAndName() throws Exception {
        try (FakeExtension fx = new FakeExtension(kept("max-age=60"))) {
            CacheClient client = fx.client().build();
            fx.reads(client, "p", 1);
            fx.reads(client, "p", 0);
            fx.reads(client, "p", 0);
            fx.reads(client, "q", 1);
            assertEquals("v-p", client.getSecret("p")); // another route: its own entry
            assertEquals(3, fx.requests.size());
            assertEquals("v-p", client.getSecret("p"));
            assertEquals(3, fx.requests.size());
        }
    }

    @Test
    @DisplayName("near cache: Cache-Control parsed leniently (commas, any case, whitespace, quotes)")
    void cacheControlLenient() throws Exception {
        for (String header : new String[] {"max-age=60", "MAX-AGE=60", " public ,  Max-Age=60 ", "max-age = 60",
            "private, max-age=\"60\"", "max-age=0060", "max-age=99999999999999999999", "immutable,max-age=1,max-age=60"}) {
            try (KeepAliveAnswers fx = new KeepAliveAnswers(name -> header)) {
                CacheClient client = fx.client().build();
                fx.reads(client, "p", 1);
                fx.reads(client, "p", 0);
            }
        }
    }

    @Test
    @DisplayName("near cache: not kept: max-age=0, no header, no-store, no-cache, garbled max-age")
    void notKept() throws Exception {
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
    }

    @Test
    @DisplayName("near cache: error answers are never kept, even with a max-age")
    void errorsNeverKept() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> json(n == 0 ? 404 : 502, "NotFound", "gone")
                .header("Cache-Control", "max-age=60"))) {
            CacheClient client = fx.client().build();
            assertThrows(NotFoundException.class, () -> client.getParameter("p"));
            assertThrows(UpstreamException.class, () -> client.getParameter("p"));
            assertEquals(2, fx.requests.size());
        }
    }

    @Test
    @DisplayName("near cache: a kept value expires after its max-age, counted from its arrival")
    void expiresAfterMaxAge() throws Exception {
        try (FakeExtension fx = new FakeExtension(kept("max-age=1"))) {
            CacheClient client = fx.client().build();
            long arrived = System.nanoTime();
            fx.reads(client, "p", 1);
            fx.reads(client, "p", 0);
            long left = 1_000_000_000L - (System.nanoTime() - arrived);
            if (left > 50_000_000L) {
                Thread.sleep(left / 1_000_000 - 50); // still within the second: kept
                fx.reads(client, "p", 0);
            }
            Thread.sleep(Math.max(0, (1_100_000_000L - (System.nanoTime() - arrived)) / 1_000_000));
            fx.reads(client, "p", 1);
            fx.reads(client, "p", 0); // the new answer is kept again
        }
    }

    @Test
    @DisplayName("near cache: a transform reads the kept value, and every read returns a fresh object")
    void freshObjects() throws Exception {
        String json = "{\"a\": [1, {\"b\": \"c\"}], \"n\": 2.50}";
        try (FakeExtension fx = new FakeExtension((r, n) -> (r.path.equals("/secrets")
                ? new Reply(200, "application/octet-stream", new byte[] {0, 1, 2})
                : r.rawQuery.equals("name=b64") ? new Reply(200, "text/plain; charset=utf-8", "AAEC")
                : new Reply(200, "application/json", json)).header("Cache-Control", "max-age=60"))) {
            CacheClient client = fx.client().build();
            assertEquals(json, client.getParameter("j"));
            Map<String, Object> first = client.getParameter("j", Transform.JSON); // the kept text, parsed
            assertEquals(1, fx.requests.size());
            Object pristine = Json.parse(json);
            assertEquals(pristine, first);
            first.put("x", "changed");
            ((List<?>) first.get("a")).clear();
            assertEquals(pristine, client.getParameter("j", Transform.JSON));
            Map<String, Object> item = client.getItem("T-1");
            item.put("a", "changed");
            asMap(((List<?>) asMap(client.getItem("T-1")).get("a")).get(1)).put("b", "changed");
            assertEquals(pristine, client.getItem("T-1"));
            byte[] bytes = client.getSecret("bin", Transform.BINARY);
            bytes[0] = 9;
            assertArrayEquals(new byte[] {0, 1, 2}, client.<byte[]>getSecret("bin", Transform.BINARY));
            byte[] decoded = client.getParameter("b64", Transform.BINARY);
            decoded[0] = 9;
            assertArrayEquals(new byte[] {0, 1, 2}, client.<byte[]>getParameter("b64", Transform.BINARY));
            assertEquals(4, fx.requests.size()); // j, T-1, bin, b64: one request each
        }
    }

    @Test
    @DisplayName("near cache: at most 1,000 values; when full the expired go first, then the oldest")
    void boundedToAThousand() throws Exception {
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
    }

    @Test
    @DisplayName("near cache: substituted values have none and are unchanged")
    void substitutedValues() {
        Map<String, Map<String, Object>> values = new LinkedHashMap<>();
        values.put("parameters", Collections.singletonMap("j", Collections.singletonMap("a", 1)));
        CacheClient client = CacheClient.builder().environment(Collections.singletonMap("CACHE_EXTENSION_CLIENT_CACHE", "on"))
                .values(values).build();
        Map<String, Object> first = client.getParameter("j", Transform.JSON);
        first.put("a", 2);
        assertEquals(new BigDecimal("1"), asMap(client.getParameter("j", Transform.JSON)).get("a"));
        assertEquals(Json.parse("{\"refreshed\": [], \"failed\": []}"), client.refresh("j"));
    }

    @Test
    @DisplayName("near cache: speed of a repeated read of one kept name (printed)")
    void speedPrinted() throws Throwable {
        try (FakeExtension fx = new FakeExtension((r, n) -> (r.rawQuery.equals("name=j")
                ? new Reply(200, "application/json", "{\"url\": \"https://example.com\", \"retries\": 3, \"on\": true}")
                : new Reply(200, "text/plain; charset=utf-8", "https://example.com/some/setting"))
                .header("Cache-Control", "max-age=600"))) {
            CacheClient client = fx.client().build();
            client.getParameter("p");
            client.getParameter("p");
            assertEquals(1, fx.requests.size()); // kept: what follows measures the near cache
            String text = percentiles(() -> client.getParameter("p"));
            String parsed = percentiles(() -> client.getParameter("j", Transform.JSON));
            assertEquals(2, fx.requests.size());
            // Surefire keeps it in surefire-reports/dev.cacheextension.client.NearCacheTest-output.txt.
            System.out.println("near cache read, 200,000 after a 100,000 warm-up: text " + text + "; JSON-parsed " + parsed);
        }
    }

    /** p50 and p99 of one call, in µs, over 200,000 calls after 100,000 uncounted ones. */
    private static String percentiles(Executable call) throws Throwable {
        for (int i = 0; i < 100_000; i++) {
            call.execute();
        }
        long[] took = new long[200_000];
        for (int i = 0; i < took.length; i++) {
            long start = System.nanoTime();
            call.execute();
            took[i] = System.nanoTime() - start;
        }
        Arrays.sort(took);
        return String.format(Locale.ROOT, "p50 %.2f µs, p99 %.2f µs", took[took.length / 2] / 1000.0,
                took[took.length * 99 / 100] / 1000.0);
    }
}
