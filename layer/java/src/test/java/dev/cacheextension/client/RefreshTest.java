package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.TOKEN;
import static dev.cacheextension.client.Checks.below;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.noLeak;
import static dev.cacheextension.client.Clients.statusesMap;
import static dev.cacheextension.client.Clients.whenListening;
import static dev.cacheextension.client.FakeExtension.json;
import static dev.cacheextension.client.FakeExtension.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.cacheextension.client.FakeExtension.Reply;

import java.time.Duration;
import java.util.Arrays;
import java.util.Collections;
import java.util.Map;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** POST /refresh: what is sent, how errors map, what is retried (once at most), its own timeout. */
@Timeout(30)
class RefreshTest {

    static final String REFRESHED = "{\"refreshed\": [{\"source\": \"parameters\", \"name\": \"a b\"}], \"failed\": []}";

    @Test
    @DisplayName("refresh: POST /refresh with name, source, token and no body; the answer as a map")
    void postRefresh() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/json", REFRESHED))) {
            CacheClient client = fx.client().build();
            Map<String, Object> result = client.refresh("a b", "parameters");
            Recorded r = fx.last();
            assertEquals("POST", r.method);
            assertEquals("/refresh", r.path);
            assertEquals("name=a%20b&source=parameters", r.rawQuery);
            assertEquals(Collections.singletonList(TOKEN), r.header("x-aws-parameters-secrets-token"));
            assertEquals(Collections.singletonList("0"), r.header("content-length"));
            assertEquals(Json.parse(REFRESHED), result);
            client.refresh("x&y=z");
            assertEquals("name=x%26y%3Dz", fx.last().rawQuery);
            client.refresh("T-1", "dynamodb");
            assertEquals("name=T-1&source=dynamodb", fx.last().rawQuery);
            client.refresh("s", "secrets");
            assertEquals("name=s&source=secrets", fx.last().rawQuery);
            client.refreshAll();
            assertEquals("POST", fx.last().method);
            assertEquals("all=true", fx.last().rawQuery);
        }
    }

    @Test
    @DisplayName("refresh: an unknown source or a null name is refused before any request")
    void unknownSourceRefused() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("{}"))) {
            CacheClient client = fx.client().build();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> client.refresh("p", "ssm"));
            contains(e.getMessage(), "parameters, secrets, dynamodb");
            assertThrows(IllegalArgumentException.class, () -> client.refresh("p", "Parameters"));
            assertThrows(NullPointerException.class, () -> client.refresh(null));
            assertEquals(0, fx.requests.size());
        }
    }

    @Test
    @DisplayName("refresh: error statuses map as for reads, 429 RateLimited too; nothing is retried, not even 503")
    void errorStatusesMap() throws Exception {
        Object[][] table = {
            {404, "NotConfigured", NotFoundException.class},
            {502, "ThrottlingException", UpstreamException.class},
            {504, "Timeout", UpstreamException.class},
            {429, "RateLimited", CacheExtensionException.class},
            {400, "BadRequest", CacheExtensionException.class},
            {503, "NotReady", CacheExtensionException.class},
        };
        statusesMap(table, client -> client.refresh("p/q"), "POST /refresh");
    }

    @Test
    @DisplayName("refresh: a connection closed before any answer is retried once, at once, never twice")
    void closedConnectionRetriedOnce() throws Exception {
        try (RawServer raw = new RawServer(1, "application/json", REFRESHED)) {
            // even without a start-up window: the extension coalesces the repeat with a refresh that arrived
            assertEquals(Json.parse(REFRESHED), CacheClient.builder().environment(Collections.emptyMap()).port(raw.port())
                    .token(TOKEN).startupTimeout(Duration.ZERO).build().refreshAll());
            assertEquals(2, raw.accepted.get());
        }
        try (RawServer raw = new RawServer(Integer.MAX_VALUE)) {
            long start = System.nanoTime();
            ExtensionUnavailableException e = assertThrows(ExtensionUnavailableException.class, () -> CacheClient.builder()
                    .environment(Collections.emptyMap()).port(raw.port()).token(TOKEN).build().refreshAll());
            below(start, 1000); // not retried through the 2 s start-up window as a GET is
            assertEquals(0, e.status());
            assertNull(e.retryAfter());
            contains(e.getMessage(), "retried once");
            assertEquals(2, raw.accepted.get());
            noLeak(e, TOKEN);
        }
    }

    @Test
    @DisplayName("refresh: a kept-alive connection the extension closed while idle is retried on a new one")
    void keptAliveConnectionClosedWhileIdle() throws Exception {
        try (KeepAliveServer server = new KeepAliveServer(REFRESHED)) {
            CacheClient client = CacheClient.builder().environment(Collections.emptyMap()).port(server.port())
                    .token(TOKEN).startupTimeout(Duration.ZERO).build();
            assertEquals(Json.parse(REFRESHED), client.refresh("a b"));
            Thread.sleep(100); // idle, as between two invokes
            assertEquals(Json.parse(REFRESHED), client.refreshAll());
            // the second went out on the kept-alive connection first, then once more on a new one
            assertEquals(Arrays.asList(1, 1, 2), server.connections);
        }
    }

    @Test
    @DisplayName("refresh: 429 RateLimited gives retryAfter() from Retry-After in delta-seconds only")
    void rateLimitedRetryAfter() throws Exception {
        String[][] table = { // Retry-After (null: none), seconds (null: not set)
            {null, null}, {"7", "7"}, {"0", "0"}, {"007", "7"}, {" 12\t", "12"}, {"1.5", null}, {"-1", null},
            {"+3", null}, {"Wed, 21 Oct 2015 07:28:00 GMT", null}, {"soon", null}, {"", null}, {"7 s", null},
            {"0x10", null}, {"1e3", null}, {"99999999999999999999999", "2147483648"},
        };
        for (String[] row : table) {
            try (FakeExtension fx = new FakeExtension((r, n) -> json(429, "RateLimited", "retry in 6.2 s")
                    .header("Retry-After", row[0]))) {
                CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> fx.client().build().refreshAll());
                assertEquals(CacheExtensionException.class, e.getClass());
                assertEquals(429, e.status());
                assertEquals("RateLimited", e.code());
                assertEquals(row[1] == null ? null : Duration.ofSeconds(Long.parseLong(row[1])), e.retryAfter(),
                        () -> "Retry-After " + Arrays.toString(row));
                assertEquals(1, fx.requests.size());
            }
        }
    }

    @Test
    @DisplayName("refresh: connection refused until the extension listens is retried")
    void refusedUntilListening() throws Exception {
        assertEquals(Json.parse(REFRESHED),
                whenListening((r, n) -> new Reply(200, "application/json", REFRESHED), client -> client.refresh("a b")));
    }

    @Test
    @DisplayName("refresh: bounded by refreshTimeout (default 5 s), not by the read timeout")
    void boundedByRefreshTimeout() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> {
            try {
                Thread.sleep(300);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return new Reply(200, "application/json", REFRESHED);
        })) {
            assertEquals(Json.parse(REFRESHED), fx.client().timeout(Duration.ofMillis(100)).build().refresh("a b"));
            long start = System.nanoTime();
            ExtensionUnavailableException e = assertThrows(ExtensionUnavailableException.class,
                    () -> fx.client().refreshTimeout(Duration.ofMillis(100)).build().refresh("slow"));
            below(start, 290);
            contains(e.getMessage(), "100 ms");
            assertEquals(2, fx.requests.size());
            assertEquals(Duration.ofSeconds(5), CacheClient.DEFAULT_REFRESH_TIMEOUT);
            assertThrows(IllegalArgumentException.class, () -> CacheClient.builder().refreshTimeout(Duration.ZERO));
        }
    }

    @Test
    @DisplayName("refresh: an answer that is not a JSON object is an error")
    void answerNotAnObject() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/json", "[]"))) {
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> fx.client().build().refreshAll());
            assertEquals(CacheExtensionException.class, e.getClass());
        }
    }
}
