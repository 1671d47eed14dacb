package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.SECRET;
import static dev.cacheextension.client.Checks.TOKEN;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.noLeak;
import static dev.cacheextension.client.Clients.statusesMap;
import static dev.cacheextension.client.FakeExtension.json;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.cacheextension.client.FakeExtension.Reply;

import java.math.BigDecimal;
import java.time.Duration;
import java.util.Map;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Error answers and the exception each becomes; values that need a transform; nothing secret in a message. */
@Timeout(30)
class HttpErrorsTest {

    @Test
    @DisplayName("http: error statuses map to exception classes; nothing but 503 is retried")
    void errorStatusesMap() throws Exception {
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
    }

    @Test
    @DisplayName("http: retryAfter() on any error answer that has one, else null")
    void retryAfterOnAnyError() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> json(r.rawQuery.endsWith("gone") ? 404 : 503, "X", "x")
                .header("Retry-After", r.rawQuery.endsWith("gone") ? "3" : "2"))) {
            assertEquals(Duration.ofSeconds(3),
                    assertThrows(NotFoundException.class, () -> fx.client().build().getParameter("gone")).retryAfter());
            ExtensionUnavailableException e = assertThrows(ExtensionUnavailableException.class,
                    () -> fx.client().startupTimeout(Duration.ofMillis(50)).build().getParameter("starting"));
            assertEquals(503, e.status());
            assertEquals(Duration.ofSeconds(2), e.retryAfter());
        }
        try (FakeExtension fx = new FakeExtension((r, n) -> json(502, "ThrottlingException", "x"))) {
            assertNull(assertThrows(UpstreamException.class, () -> fx.client().build().getParameter("p")).retryAfter());
        }
        assertNull(new CacheExtensionException("m", 429, "RateLimited").retryAfter());
    }

    @Test
    @DisplayName("http: an error body that is not the extension's JSON gives no code")
    void errorBodyNotJson() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(500, "text/html", "<h1>" + SECRET + "</h1>"))) {
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> fx.client().build().getParameter("p"));
            assertEquals(500, e.status());
            assertNull(e.code());
            noLeak(e, SECRET);
        }
    }

    @Test
    @DisplayName("http: an error message that echoes the token is not repeated")
    void echoedTokenNotRepeated() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> json(403, "InvalidToken", "you sent " + TOKEN))) {
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> fx.client().build().getParameter("p"));
            assertEquals(403, e.status());
            noLeak(e, TOKEN);
        }
    }

    @Test
    @DisplayName("http: a binary secret needs Transform.BINARY")
    void binarySecretNeedsTransform() throws Exception {
        byte[] bytes = {0, (byte) 0xff, 1, 2};
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/octet-stream", bytes))) {
            CacheClient client = fx.client().build();
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> client.getSecret("bin"));
            assertEquals(CacheExtensionException.class, e.getClass());
            contains(e.getMessage(), "Transform.BINARY");
            contains(e.getMessage(), "bin");
            byte[] got = client.getSecret("bin", Transform.BINARY);
            assertArrayEquals(bytes, got);
        }
    }

    @Test
    @DisplayName("http: BINARY decodes base64 text; invalid base64 is an error without the text")
    void binaryDecodesBase64() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "text/plain; charset=utf-8",
                r.rawQuery.endsWith("good") ? "AP8BAg==" : SECRET + "!"))) {
            CacheClient client = fx.client().build();
            byte[] got = client.getParameter("good", Transform.BINARY);
            assertArrayEquals(new byte[] {0, (byte) 0xff, 1, 2}, got);
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> client.getParameter("bad", Transform.BINARY));
            contains(e.getMessage(), "base64");
            noLeak(e, SECRET);
        }
    }

    @Test
    @DisplayName("http: JSON transform; a parse failure is an error without the text")
    void jsonTransform() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "text/plain; charset=utf-8",
                r.rawQuery.endsWith("good") ? "{\"user\": \"admin\", \"port\": 5432}" : "{\"password\": \"" + SECRET + "\""))) {
            CacheClient client = fx.client().build();
            Map<String, Object> good = client.getSecret("good", Transform.JSON);
            assertEquals("admin", good.get("user"));
            assertEquals(new BigDecimal(5432), good.get("port"));
            CacheExtensionException e = assertThrows(CacheExtensionException.class, () -> client.getSecret("bad", Transform.JSON));
            assertEquals(CacheExtensionException.class, e.getClass());
            contains(e.getMessage(), "not valid JSON");
            noLeak(e, SECRET);
        }
    }

    @Test
    @DisplayName("http: an item that is not a JSON object is an error")
    void itemNotAnObject() throws Exception {
        try (FakeExtension fx = new FakeExtension((r, n) -> new Reply(200, "application/json", "[1]"))) {
            assertThrows(CacheExtensionException.class, () -> fx.client().build().getItem("T-1"));
        }
    }
}
