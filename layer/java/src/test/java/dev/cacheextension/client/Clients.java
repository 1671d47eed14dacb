package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.TOKEN;
import static dev.cacheextension.client.Checks.contains;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/** Clients built for a test (from a given environment, never the real one) and checks shared by test classes. */
final class Clients {

    private Clients() {
    }

    interface Call<T> {
        T on(CacheClient client);
    }

    /** A builder reading the given environment only (null: unset). */
    static CacheClient.Builder env(String port, String extensionToken, String sessionToken) {
        return env(port, extensionToken, sessionToken, null);
    }

    /** A builder reading the given environment only (null: unset), AWS_CONTAINER_AUTHORIZATION_TOKEN included. */
    static CacheClient.Builder env(String port, String extensionToken, String sessionToken, String containerToken) {
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

    /** A builder of a client of this port reading CACHE_EXTENSION_CLIENT_CACHE=value and the test token only. */
    static CacheClient.Builder nearEnv(String port, String value) {
        Map<String, String> env = new HashMap<>();
        env.put("CACHE_EXTENSION_PORT", port);
        env.put("AWS_SESSION_TOKEN", TOKEN);
        env.put("CACHE_EXTENSION_CLIENT_CACHE", value);
        return CacheClient.builder().environment(env);
    }

    /** A loopback port nothing listened on a moment ago. */
    static int freePort() throws Exception {
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return probe.getLocalPort();
        }
    }

    /** Each {status, code, exception class} row answered by a test double: what the call throws, after one request. */
    static void statusesMap(Object[][] table, Call<?> call, String route) throws Exception {
        for (Object[] row : table) {
            int status = (Integer) row[0];
            String code = (String) row[1];
            try (FakeExtension fx = new FakeExtension((r, n) -> FakeExtension.json(status, code, "explained"))) {
                CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> call.on(fx.client().build()));
                assertEquals(row[2], e.getClass());
                assertEquals(status, e.status());
                assertEquals(code, e.code());
                assertEquals(1, fx.requests.size());
                contains(e.getMessage(), route);
                contains(e.getMessage(), "p/q");
                contains(e.getMessage(), String.valueOf(status));
                contains(e.getMessage(), code);
            }
        }
    }

    /** The call on a port nothing listens on yet, where a test double with this responder starts 300 ms later. */
    static <T> T whenListening(FakeExtension.Responder responder, Call<T> call) throws Exception {
        int port = freePort();
        CacheClient client = CacheClient.builder().environment(Collections.emptyMap()).port(port).token(TOKEN)
                .startupTimeout(Duration.ofSeconds(5)).build();
        ExecutorService pool = Executors.newSingleThreadExecutor(FakeExtension::daemon);
        try {
            Future<T> result = pool.submit(() -> call.on(client));
            Thread.sleep(300);
            assertFalse(result.isDone(), "answered before the extension listened");
            try (FakeExtension fx = new FakeExtension(responder, port)) {
                T value = result.get(5, TimeUnit.SECONDS);
                assertEquals(1, fx.requests.size());
                return value;
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
