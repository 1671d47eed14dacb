package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.TOKEN;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.notContains;
import static dev.cacheextension.client.Clients.env;
import static dev.cacheextension.client.FakeExtension.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.cacheextension.client.FakeExtension.Reply;

import java.math.BigDecimal;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/** What the client sends: routes, query encoding, the token header, the port, kept-alive connections. */
@Timeout(30)
class HttpRequestTest {

    private static final String TOKEN_HEADER = "x-aws-parameters-secrets-token";

    @Test
    @DisplayName("http: names are URL-encoded as query values (%20 for spaces)")
    void namesAreUrlEncoded() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("v"))) {
            CacheClient client = fx.client().build();
            String[][] names = {
                {"a b", "a%20b"}, {"a+b", "a%2Bb"}, {"x&y=z", "x%26y%3Dz"}, {"é", "%C3%A9"},
                {"/aws/reference/secretsmanager/id", "%2Faws%2Freference%2Fsecretsmanager%2Fid"},
                {"?#%", "%3F%23%25"}, {"😀", "%F0%9F%98%80"}, {"A-z_0.9*~", "A-z_0.9*%7E"},
            };
            for (String[] name : names) {
                client.getParameter(name[0]);
                Recorded r = fx.last();
                assertEquals("/parameters", r.path);
                assertEquals("name=" + name[1], r.rawQuery);
                assertEquals(name[0], URLDecoder.decode(r.rawQuery.substring(5), StandardCharsets.UTF_8));
            }
        }
    }

    @Test
    @DisplayName("http: routes for parameters, secrets and items")
    void routes() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> r.path.equals("/dynamodb")
                ? new Reply(200, "application/json", "{\"id\":\"1\",\"n\":2.50}") : new Reply(200, "text/plain; charset=utf-8", "v"))) {
            CacheClient client = fx.client().build();
            assertEquals("v", client.getParameter("p"));
            assertEquals("/parameters", fx.last().path);
            assertEquals("GET", fx.last().method);
            assertEquals("v", client.getSecret("s"));
            assertEquals("/secrets", fx.last().path);
            Map<String, Object> item = client.getItem("T-1");
            assertEquals("/dynamodb", fx.last().path);
            assertEquals("name=T-1", fx.last().rawQuery);
            assertEquals("1", item.get("id"));
            assertEquals(new BigDecimal("2.50"), item.get("n"));
        }
    }

    @Test
    @DisplayName("http: text is decoded as UTF-8")
    void textIsUtf8() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("é😀 ü"))) {
            assertEquals("é😀 ü", fx.client().build().getParameter("p"));
        }
    }

    @Test
    @DisplayName("http: token header, CACHE_EXTENSION_TOKEN before AWS_SESSION_TOKEN before AWS_CONTAINER_AUTHORIZATION_TOKEN")
    void tokenHeaderChain() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("v"))) {
            String port = String.valueOf(fx.port());
            env(port, "ext-token", "session").build().getParameter("p");
            assertEquals(Collections.singletonList("ext-token"), fx.last().header(TOKEN_HEADER));
            env(port, "", "session").build().getParameter("p");
            assertEquals(Collections.singletonList("session"), fx.last().header(TOKEN_HEADER));
            env(port, null, "session").build().getParameter("p");
            assertEquals(Collections.singletonList("session"), fx.last().header(TOKEN_HEADER));
            env(port, "ext-token", "session").token("explicit").build().getParameter("p");
            assertEquals(Collections.singletonList("explicit"), fx.last().header(TOKEN_HEADER));
            assertNull(fx.last().header("x-forwarded-for"));
            // Lambda SnapStart has no AWS_SESSION_TOKEN: the container credentials' token is the last resort.
            env(port, "ext-token", "session", "container").build().getParameter("p");
            assertEquals(Collections.singletonList("ext-token"), fx.last().header(TOKEN_HEADER));
            env(port, "", "session", "container").build().getParameter("p");
            assertEquals(Collections.singletonList("session"), fx.last().header(TOKEN_HEADER));
            env(port, null, null, "container").build().getParameter("p");
            assertEquals(Collections.singletonList("container"), fx.last().header(TOKEN_HEADER));
            env(port, "", "", "container").build().getParameter("p");
            assertEquals(Collections.singletonList("container"), fx.last().header(TOKEN_HEADER));
            env(port, null, null, "container").token("explicit").build().getParameter("p");
            assertEquals(Collections.singletonList("explicit"), fx.last().header(TOKEN_HEADER));
            notContains(env(port, null, null, "container").build().toString(), "container");
        }
    }

    @Test
    @DisplayName("http: no token (none in the environment, or token(\"\")): MissingToken before connecting, nothing sent")
    void noTokenSendsNothing() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("v"))) {
            String port = String.valueOf(fx.port());
            for (CacheClient client : List.of(env(port, null, null).build(), env(port, "", "", "").build(),
                    env(port, "ext-token", "session").token("").build())) {
                List<Executable> calls = List.of(() -> client.getParameter("p"), () -> client.getSecret("s", Transform.JSON),
                        () -> client.getItem("T-1"), () -> client.refresh("p"), client::refreshAll);
                for (Executable call : calls) {
                    CacheExtensionException e = assertThrows(CacheExtensionException.class, call);
                    assertSame(CacheExtensionException.class, e.getClass());
                    assertEquals(0, e.status());
                    assertEquals("MissingToken", e.code());
                    for (String text : List.of("CACHE_EXTENSION_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                            "nothing was sent")) {
                        contains(e.getMessage(), text);
                    }
                    notContains(e.getMessage(), "ext-token");
                }
            }
            assertEquals(0, fx.requests.size());
        }
        Map<String, Map<String, String>> values = Map.of("parameters", Map.of("p", "v")); // they need no token
        assertEquals("v", CacheClient.builder().environment(Collections.emptyMap()).values(values).build().getParameter("p"));
    }

    @Test
    @DisplayName("http: port from CACHE_EXTENSION_PORT, else 4000; bad values refused")
    void portFromEnvironment() {
        contains(env(null, null, TOKEN).build().toString(), "127.0.0.1:4000");
        contains(env("4100", null, TOKEN).build().toString(), "127.0.0.1:4100");
        contains(env("4100", null, TOKEN).port(4200).build().toString(), "127.0.0.1:4200");
        assertThrows(IllegalArgumentException.class, () -> env("http", null, TOKEN).build());
        assertThrows(IllegalArgumentException.class, () -> env("70000", null, TOKEN).build());
        assertThrows(IllegalArgumentException.class, () -> CacheClient.builder().port(0));
        assertThrows(IllegalArgumentException.class, () -> CacheClient.builder().token("bad\r\ntoken"));
        assertThrows(IllegalArgumentException.class, () -> CacheClient.builder().timeout(Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> CacheClient.builder().startupTimeout(Duration.ofMillis(-1)));
        notContains(CacheClient.builder().environment(Collections.emptyMap()).token(TOKEN).build().toString(), TOKEN);
    }

    @Test
    @DisplayName("http: connections are kept alive")
    void connectionsAreKeptAlive() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("v"))) {
            CacheClient client = fx.client().build();
            for (int i = 0; i < 5; i++) {
                client.getParameter("p");
            }
            Set<Integer> ports = new HashSet<>();
            for (Recorded r : fx.requests) {
                ports.add(r.remotePort);
            }
            assertEquals(1, ports.size());
        }
    }

    @Test
    @DisplayName("http: concurrent calls from many threads")
    void concurrentCalls() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "text/plain", "v-" + r.rawQuery))) {
            CacheClient client = fx.client().build();
            ExecutorService pool = Executors.newFixedThreadPool(8, FakeExtension::daemon);
            try {
                List<Future<Boolean>> results = new ArrayList<>();
                for (int i = 0; i < 200; i++) {
                    String name = "n" + i;
                    Callable<Boolean> call = () -> ("v-name=" + name).equals(client.getParameter(name));
                    results.add(pool.submit(call));
                }
                for (Future<Boolean> result : results) {
                    assertTrue(result.get(10, TimeUnit.SECONDS));
                }
            } finally {
                pool.shutdownNow();
            }
            assertEquals(200, fx.requests.size());
        }
    }

    @Test
    @DisplayName("http: getDefault is one shared client")
    void getDefaultIsShared() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4, FakeExtension::daemon);
        try {
            List<Future<CacheClient>> results = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                results.add(pool.submit(CacheClient::getDefault));
            }
            for (Future<CacheClient> result : results) {
                assertSame(CacheClient.getDefault(), result.get(5, TimeUnit.SECONDS), "two default clients");
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
