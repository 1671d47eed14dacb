package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.SECRET;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.noLeak;
import static dev.cacheextension.client.FakeExtension.ok;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/** Values given to the client instead of the extension (builder values, CACHE_EXTENSION_CLIENT_VALUES): no HTTP. */
@Timeout(30)
class OfflineValuesTest {

    @Test
    @DisplayName("offline: refresh does nothing and answers empty lists; the source is still checked")
    void refreshDoesNothing() throws Exception {
        try (FakeExtension fx = new FakeExtension(ok("{}"))) {
            Map<String, Map<String, Object>> values = new HashMap<>();
            values.put("parameters", Collections.singletonMap("p", "v"));
            CacheClient client = fx.client().values(values).build();
            Map<String, Object> nothing = new LinkedHashMap<>();
            nothing.put("refreshed", Collections.emptyList());
            nothing.put("failed", Collections.emptyList());
            assertEquals(nothing, client.refresh("p"));
            assertEquals(nothing, client.refresh("not-among-them", "secrets"));
            assertEquals(nothing, client.refreshAll());
            client.refreshAll().put("mutated", true);
            assertEquals(nothing, client.refreshAll());
            assertThrows(IllegalArgumentException.class, () -> client.refresh("p", "ssm"));
            assertEquals(0, fx.requests.size());
        }
    }

    @Test
    @DisplayName("offline: builder values, transforms, no HTTP")
    void builderValues() throws Exception {
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
            CacheClient client = fx.client().values(values).build();

            assertEquals("text", client.getParameter("plain"));
            Map<String, Object> json = client.getParameter("json", Transform.JSON);
            assertEquals(Arrays.asList(new BigDecimal("1"), new BigDecimal("2.5")), json.get("a"));
            assertArrayEquals(new byte[] {0, (byte) 0xff, 1, 2}, client.<byte[]>getParameter("b64", Transform.BINARY));
            assertEquals("{\"k\":1}", client.getParameter("object"));
            assertArrayEquals(new byte[] {1, 2, 3}, client.<byte[]>getSecret("bin", Transform.BINARY));
            contains(assertThrows(CacheExtensionException.class, () -> client.getSecret("bin")).getMessage(), "Transform.BINARY");
            Map<String, Object> got = client.getItem("T-1");
            assertEquals("1", got.get("id"));
            assertEquals(new BigDecimal("2"), got.get("n")); // the same types as from the extension
            assertEquals(Arrays.asList("a", "b"), got.get("tags"));
            got.put("id", "changed");
            assertEquals("1", client.getItem("T-1").get("id")); // each call returns a fresh map
            item.put("id", "changed-later");
            assertEquals("1", client.getItem("T-1").get("id")); // values were copied at build()
            assertEquals(0, fx.requests.size());
        }
    }

    @Test
    @DisplayName("offline: a missing name is NotFound 404 NotConfigured")
    void missingNameIsNotFound() {
        CacheClient client = CacheClient.builder().environment(Collections.emptyMap())
                .values(Collections.singletonMap("parameters", Collections.singletonMap("a", (Object) "b"))).build();
        List<Executable> calls = Arrays.asList(() -> client.getParameter("other"), () -> client.getSecret("a"),
                () -> client.getItem("T-1"));
        for (Executable call : calls) {
            NotFoundException e = assertThrows(NotFoundException.class, call);
            assertEquals(404, e.status());
            assertEquals("NotConfigured", e.code());
        }
    }

    @Test
    @DisplayName("offline: invalid values are refused when building")
    void invalidValuesRefused() {
        assertThrows(IllegalArgumentException.class,
                () -> CacheClient.builder().values(Collections.singletonMap("params", Collections.emptyMap())).build());
        assertThrows(IllegalArgumentException.class, () -> CacheClient.builder().values(Collections.singletonMap("dynamodb",
                Collections.singletonMap("T-1", (Object) "not a map"))).build());
    }

    @Test
    @DisplayName("offline: CACHE_EXTENSION_CLIENT_VALUES names a JSON file")
    void valuesFile() throws Exception {
        Path file = Files.createTempFile("cache-client-values", ".json");
        try {
            Files.writeString(file, "{\"parameters\": {\"p\": \"from-file\", \"j\": \"[1]\"}, \"secrets\": {\"s\": \"S\"},"
                    + " \"dynamodb\": {\"T-1\": {\"id\": \"1\", \"n\": 12345678901234567890.5}}}", StandardCharsets.UTF_8);
            Map<String, String> env = new HashMap<>();
            env.put(CacheClient.VALUES_VARIABLE, file.toString());
            env.put("CACHE_EXTENSION_PORT", "not-a-port-but-unused");
            CacheClient client = CacheClient.builder().environment(env).build();
            assertEquals("from-file", client.getParameter("p"));
            assertEquals(Collections.singletonList(new BigDecimal(1)), client.getParameter("j", Transform.JSON));
            assertEquals("S", client.getSecret("s"));
            assertEquals(new BigDecimal("12345678901234567890.5"), client.getItem("T-1").get("n"));
            assertThrows(NotFoundException.class, () -> client.getParameter("q"));
            // builder values win over the file
            assertEquals("b", CacheClient.builder().environment(env)
                    .values(Collections.singletonMap("parameters", Collections.singletonMap("p", (Object) "b")))
                    .build().getParameter("p"));
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    @DisplayName("offline: a bad values file is a clear error without its content")
    void badValuesFile() throws Exception {
        Path file = Files.createTempFile("cache-client-values", ".json");
        try {
            Map<String, String> env = Collections.singletonMap(CacheClient.VALUES_VARIABLE, file.toString());
            Files.writeString(file, "{\"secrets\": {\"s\": \"" + SECRET + "\"", StandardCharsets.UTF_8);
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build());
            contains(e.getMessage(), CacheClient.VALUES_VARIABLE);
            noLeak(e, SECRET);
            Files.writeString(file, "[\"" + SECRET + "\"]", StandardCharsets.UTF_8);
            noLeak(assertThrows(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build()), SECRET);
            Files.writeString(file, "{\"other\": {}}", StandardCharsets.UTF_8);
            contains(assertThrows(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build()).getMessage(),
                    "other");
            Files.delete(file);
            contains(assertThrows(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build()).getMessage(),
                    CacheClient.VALUES_VARIABLE);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    @DisplayName("offline: a JSON value reads as its compact JSON text (file numbers as written), binary refuses it, null is refused")
    void jsonValues() throws Exception {
        Map<String, Object> parameters = new LinkedHashMap<>();
        parameters.put("object", new LinkedHashMap<>(Map.of("a", 1)));
        parameters.put("number", 2.5);
        parameters.put("flag", true);
        CacheClient client = CacheClient.builder().values(Map.of("parameters", parameters)).build();
        assertEquals("{\"a\":1}", client.getParameter("object"));
        assertEquals("2.5", client.getParameter("number"));
        assertEquals("true", client.getParameter("flag"));
        assertEquals(Map.of("a", new BigDecimal(1)), client.getParameter("object", Transform.JSON));
        for (String name : List.of("object", "number", "flag")) { // "true" would decode as base64: refused instead
            contains(assertThrows(CacheExtensionException.class, () -> client.getParameter(name, Transform.BINARY)).getMessage(),
                    "JSON value");
        }
        Map<String, Object> withNull = new HashMap<>();
        withNull.put("good", SECRET);
        withNull.put("bad", null);
        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> CacheClient.builder().values(Map.of("secrets", withNull)).build());
        contains(refused.getMessage(), "secrets 'bad' is null");
        noLeak(refused, SECRET);
        contains(assertThrows(IllegalArgumentException.class, () -> CacheClient.builder().values(Map.of("dynamodb",
                Map.of("T-1", List.of(Map.of("id", "1"))))).build()).getMessage(), "dynamodb 'T-1' must be an item");

        Path file = Files.createTempFile("cache-client-values", ".json");
        try {
            Map<String, String> env = Collections.singletonMap(CacheClient.VALUES_VARIABLE, file.toString());
            Files.writeString(file, "{\"parameters\": {\"x\": {\"n\": [1.50, 1e3, 0.0000001, -0]}},"
                    + " \"dynamodb\": {\"T\": {\"n\": 1.50}}}", StandardCharsets.UTF_8);
            CacheClient fromFile = CacheClient.builder().environment(env).build();
            assertEquals("{\"n\":[1.50,1e3,0.0000001,-0]}", fromFile.getParameter("x"));
            assertEquals(new BigDecimal("1.50"), fromFile.getItem("T").get("n"));
            Files.writeString(file, "{\"dynamodb\": {\"T\": \"" + SECRET + "\"}}", StandardCharsets.UTF_8);
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> CacheClient.builder().environment(env).build());
            contains(e.getMessage(), "dynamodb 'T' must be an item");
            noLeak(e, SECRET);
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
