package dev.cacheextension.client;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Map;

/**
 * A value's body as the caller asked for it: text, a DynamoDB item, or decoded by a {@link Transform}. The same
 * for an answer of the extension, a near cache hit and a substituted value; failures name the value, never quote it.
 */
final class BodyDecoder {

    private BodyDecoder() {
    }

    /** {@code body} of {@code what} (a {@code noun} of {@code source}) decoded by {@code transform}. */
    static Object decode(Body body, String source, String noun, Transform transform, String what) {
        if (CacheClient.DYNAMODB.equals(source)) {
            Object item = json(body, what);
            if (!(item instanceof Map)) {
                throw new CacheExtensionException(what + " is not a JSON object");
            }
            return item;
        }
        if (transform == null) {
            if (body.binary) {
                throw new CacheExtensionException(what + " is binary (application/octet-stream): read it with get"
                        + Character.toUpperCase(noun.charAt(0)) + noun.substring(1) + "(name, Transform.BINARY)");
            }
            return new String(body.bytes, StandardCharsets.UTF_8);
        }
        if (transform == Transform.JSON) {
            return json(body, what);
        }
        if (body.binary) {
            return body.bytes.clone();
        }
        if (body.json) { // base64 text is given as a string, never as a JSON value
            throw new CacheExtensionException(what + ": Transform.BINARY needs base64 text, and the offline value is a"
                    + " JSON value");
        }
        try {
            return Base64.getDecoder().decode(new String(body.bytes, StandardCharsets.UTF_8).trim());
        } catch (IllegalArgumentException e) {
            // no cause: the decoder's message quotes a character of the value
            throw new CacheExtensionException(what + " is not valid base64 (Transform.BINARY)");
        }
    }

    static Object json(Body body, String what) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(body.bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new CacheExtensionException(what + " is not valid UTF-8 text, so not JSON");
        }
        try {
            return Json.parse(text);
        } catch (IllegalArgumentException e) {
            // Json's messages give an offset, never the text
            throw new CacheExtensionException(what + " is not valid JSON: " + e.getMessage());
        }
    }
}
