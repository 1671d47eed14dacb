package example;

import dev.cacheextension.client.CacheClient;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The Java example function: reads the sample's parameter, secret and DynamoDB item through the cache
 * extension's Java client (the layer puts cache-extension-client.jar in /opt/java/lib, on the runtime's
 * class path) and returns them in the same shape as the Python and Node.js examples:
 *
 * <pre>
 * {"parameter": "...", "secretFromReference": {"length": n, "sha256": "..."},
 *  "secret": {"length": n, "sha256": "..."}, "item": {...}}
 * </pre>
 *
 * Handler: {@code example.Handler::handleRequest}. Lambda's Java runtime accepts a handler method without a
 * {@code Context} parameter and deserialises the event into a {@code Map}, so the function needs no
 * aws-lambda-java-core jar: only the client from the layer.
 *
 * <p>A secret's value is never logged nor returned: only its length and SHA-256 digest, enough to check that
 * the right secret arrived.
 */
public class Handler {

    /** Created once per execution environment: it keeps its connection to the extension alive. */
    private static final CacheClient CACHE = new CacheClient();

    public Map<String, Object> handleRequest(Map<String, Object> event) {
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("parameter", CACHE.getParameter("CacheExtensions_Parameter1"));
        result.put("secretFromReference", fingerprint(CACHE.getParameter("/aws/reference/secretsmanager/secret_info")));
        result.put("secret", fingerprint(CACHE.getSecret("secret_info")));
        result.put("item", CACHE.getItem("DynamoDbTable-pKey1-sKey1"));
        return result;
    }

    /**
     * The length and SHA-256 (lower-case hex) of a secret, never the secret. The length is the number of bytes
     * of its UTF-8 encoding (not String.length(), which counts UTF-16 units), so that the Python and Node.js
     * examples, which also count UTF-8 bytes, report the same number for any secret.
     */
    private static Map<String, Object> fingerprint(String secret) {
        byte[] bytes = secret.getBytes(StandardCharsets.UTF_8);
        byte[] digest;
        try {
            digest = MessageDigest.getInstance("SHA-256").digest(bytes);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is not available", e); // every JRE must provide it
        }
        StringBuilder hex = new StringBuilder(64);
        for (byte b : digest) {
            hex.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("length", bytes.length);
        summary.put("sha256", hex.toString());
        return summary;
    }
}
