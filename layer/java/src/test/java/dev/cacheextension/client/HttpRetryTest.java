package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.TOKEN;
import static dev.cacheextension.client.Checks.below;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.noLeak;
import static dev.cacheextension.client.Clients.freePort;
import static dev.cacheextension.client.Clients.whenListening;
import static dev.cacheextension.client.FakeExtension.json;
import static dev.cacheextension.client.FakeExtension.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.cacheextension.client.FakeExtension.Reply;

import java.time.Duration;
import java.util.Collections;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Reads while the extension starts (503, refused, closed connections) and reads that take too long. */
@Timeout(30)
class HttpRetryTest {

    @Test
    @DisplayName("http: 503 then 200 is retried")
    void notReadyThenOk() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> n < 2 ? json(503, "NotReady", "starting") : new Reply(200, "text/plain", "v"))) {
            long start = System.nanoTime();
            assertEquals("v", fx.client().build().getParameter("p"));
            assertEquals(3, fx.requests.size());
            below(start, 1000);
        }
    }

    @Test
    @DisplayName("http: 503 until the startup timeout is ExtensionUnavailableException")
    void notReadyUntilStartupTimeout() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> json(503, "NotReady", "starting"))) {
            long start = System.nanoTime();
            ExtensionUnavailableException e = assertThrows(ExtensionUnavailableException.class,
                    () -> fx.client().startupTimeout(Duration.ofMillis(250)).build().getParameter("p"));
            long ms = (System.nanoTime() - start) / 1_000_000;
            assertTrue(ms >= 250, () -> "gave up after " + ms + " ms");
            below(start, 1500);
            assertEquals(503, e.status());
            assertEquals("NotReady", e.code());
            int attempts = fx.requests.size();
            assertTrue(attempts >= 3 && attempts <= 15, () -> attempts + " attempts in 250 ms (backoff 10 ms doubling, cap 100)");
        }
    }

    @Test
    @DisplayName("http: connection refused until the extension listens is retried")
    void refusedUntilListening() throws Exception {
        assertEquals("late", whenListening(ok("late"), client -> client.getParameter("p")));
    }

    @Test
    @DisplayName("http: unreachable after the startup timeout, message names port and name, not the token")
    void unreachableAfterStartupTimeout() throws Exception {
        int port = freePort();
        long start = System.nanoTime();
        ExtensionUnavailableException e = assertThrows(ExtensionUnavailableException.class, () -> CacheClient.builder()
                .environment(Collections.emptyMap()).port(port).token(TOKEN)
                .startupTimeout(Duration.ofMillis(200)).build().getSecret("db/password"));
        below(start, 1500);
        assertEquals(0, e.status());
        contains(e.getMessage(), "not reachable on 127.0.0.1:" + port);
        contains(e.getMessage(), "db/password");
        contains(e.getMessage(), "/secrets");
        noLeak(e, TOKEN);
    }

    @Test
    @DisplayName("http: a connection closed before any answer is retried")
    void closedBeforeAnswerIsRetried() throws Exception {
        try (RawServer raw = new RawServer(1)) {
            // retried at once, even without a start-up window
            assertEquals("after-reset", CacheClient.builder().environment(Collections.emptyMap()).port(raw.port()).token(TOKEN)
                    .startupTimeout(Duration.ZERO).build().getParameter("p"));
            assertTrue(raw.accepted.get() >= 2, "not retried");
        }
    }

    @Test
    @DisplayName("http: connections always closed without an answer: unavailable after the startup timeout")
    void alwaysClosedIsUnavailable() throws Exception {
        try (RawServer raw = new RawServer(Integer.MAX_VALUE)) {
            long start = System.nanoTime();
            ExtensionUnavailableException e = assertThrows(ExtensionUnavailableException.class, () -> CacheClient.builder()
                    .environment(Collections.emptyMap()).port(raw.port()).token(TOKEN)
                    .startupTimeout(Duration.ofMillis(200)).build().getParameter("p"));
            below(start, 1500);
            assertEquals(0, e.status());
            contains(e.getMessage(), "not reachable");
            assertTrue(raw.accepted.get() >= 3, () -> "only " + raw.accepted.get() + " attempts");
        }
    }

    @Test
    @DisplayName("http: a slow answer is a timeout (ExtensionUnavailableException), not retried")
    void slowAnswerIsATimeout() throws Exception {
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
            ExtensionUnavailableException e = assertThrows(ExtensionUnavailableException.class,
                    () -> fx.client().timeout(Duration.ofMillis(200)).build().getParameter("slow"));
            below(start, 1000);
            contains(e.getMessage(), "200 ms");
            contains(e.getMessage(), "slow");
            assertEquals(0, e.status());
            assertEquals(1, fx.requests.size());
        } finally {
            release.countDown();
        }
    }
}
