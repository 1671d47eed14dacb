package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.SECRET;
import static dev.cacheextension.client.Checks.TOKEN;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.noLeak;
import static dev.cacheextension.client.Clients.nearEnv;
import static dev.cacheextension.client.FakeExtension.json;
import static dev.cacheextension.client.NearCacheTest.kept;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.cacheextension.client.FakeExtension.Reply;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** What empties the near cache (refresh, refreshAll, even failed) and what turns it off. */
@Timeout(30)
class NearCacheSwitchTest {

    @Test
    @DisplayName("near cache: refresh drops only that name, in its source or in every source, before the POST")
    void refreshDropsThatName() throws Exception {
        try (FakeExtension fx = new FakeExtension(kept("max-age=60"))) {
            CacheClient client = fx.client().build();
            fx.reads(client, "p", 1);
            fx.reads(client, "q", 1);
            client.getSecret("p");
            client.getItem("T-1");
            int before = fx.requests.size();
            client.refresh("p", "secrets");
            assertEquals(before + 1, fx.requests.size());
            fx.reads(client, "p", 0); // the parameter p stays
            fx.reads(client, "q", 0);
            assertEquals("v-p", client.getSecret("p")); // the secret p went
            assertEquals(before + 2, fx.requests.size());
            client.refresh("p"); // every source
            fx.reads(client, "p", 1);
            fx.reads(client, "q", 0);
            assertEquals("v-p", client.getSecret("p"));
            assertEquals(before + 5, fx.requests.size());
            client.getItem("T-1");
            assertEquals(before + 5, fx.requests.size()); // another name, untouched
        }
    }

    @Test
    @DisplayName("near cache: refreshAll drops everything")
    void refreshAllDropsEverything() throws Exception {
        try (FakeExtension fx = new FakeExtension(kept("max-age=60"))) {
            CacheClient client = fx.client().build();
            fx.reads(client, "p", 1);
            fx.reads(client, "p", 0);
            client.getSecret("s");
            client.refreshAll();
            assertEquals("all=true", fx.last().rawQuery);
            fx.reads(client, "p", 1);
            int before = fx.requests.size();
            client.getSecret("s");
            assertEquals(before + 1, fx.requests.size());
        }
    }

    @Test
    @DisplayName("near cache: a failed refresh still drops (429, extension gone)")
    void failedRefreshStillDrops() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> r.path.equals("/refresh") ? json(429, "RateLimited", "later")
                : new Reply(200, "text/plain; charset=utf-8", "v-" + r.rawQuery.substring(5)).header("Cache-Control", "max-age=60"))) {
            CacheClient client = fx.client().build();
            fx.reads(client, "p", 1);
            fx.reads(client, "q", 1);
            assertThrows(CacheExtensionException.class, () -> client.refresh("p", "parameters"));
            fx.reads(client, "p", 1);
            fx.reads(client, "q", 0);
            assertThrows(CacheExtensionException.class, client::refreshAll);
            fx.reads(client, "q", 1);
        }
    }

    @Test
    @DisplayName("near cache: an answer in flight during a refresh is not kept")
    void answerInFlightNotKept() throws Exception {
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
            CacheClient client = fx.client().build();
            ExecutorService pool = Executors.newSingleThreadExecutor(FakeExtension::daemon);
            try {
                Future<String> read = pool.submit(() -> client.getParameter("p"));
                long start = System.nanoTime();
                while (fx.requests.isEmpty() && System.nanoTime() - start < 5_000_000_000L) {
                    Thread.sleep(5);
                }
                client.refresh("p"); // while the GET waits for its answer
                release.countDown();
                assertEquals("v-p", read.get(5, TimeUnit.SECONDS));
            } finally {
                release.countDown();
                pool.shutdownNow();
            }
            fx.reads(client, "p", 1); // the older answer was not kept
            fx.reads(client, "p", 0);
        }
    }

    @Test
    @DisplayName("near cache: off by the builder option or CACHE_EXTENSION_CLIENT_CACHE; the option wins")
    void offSwitch() throws Exception {
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
    }

    @Test
    @DisplayName("near cache: a bad CACHE_EXTENSION_CLIENT_CACHE throws (status 0) naming the variable, not the value")
    void badSwitchValue() {
        for (String value : new String[] {"sometimes", " on", "off ", "enabled", "2", "y", "n", "t", "nein-" + SECRET}) {
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> nearEnv("4000", value).build());
            assertEquals(CacheExtensionException.class, e.getClass());
            assertEquals(0, e.status());
            assertNull(e.code());
            contains(e.getMessage(), "CACHE_EXTENSION_CLIENT_CACHE");
            contains(e.getMessage(), "on, off, true, false, 1, 0, yes, no");
            if (value.length() > 5) { // shorter ones occur in any sentence
                noLeak(e, value.trim());
            }
            noLeak(e, TOKEN);
        }
    }
}
