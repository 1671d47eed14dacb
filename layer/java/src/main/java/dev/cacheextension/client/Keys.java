package dev.cacheextension.client;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * A read with a key ({@link CacheClient#getSecretKey(String, String)}): one top-level key of a JSON object value,
 * picked from the whole value the client holds, by the extension's rule for {@code key=}; errors as the extension
 * gives them (404 {@code KeyNotFound}, 400 {@code NotJsonObject}), never quoting the value.
 */
final class Keys {

    private Keys() {
    }

    /** The member {@code key} of a JSON object value, as a text body (Json.member), or the extension's error. */
    static Body member(Body body, String key, String what) {
        String notObject = what + ": HTTP 400 NotJsonObject: the value is not a JSON object, so it has no keys";
        if (body.binary) {
            throw new CacheExtensionException(notObject, 400, "NotJsonObject");
        }
        String text;
        try {
            text = Json.member(utf8(body), key);
        } catch (IllegalArgumentException e) {
            throw new CacheExtensionException(notObject, 400, "NotJsonObject");
        }
        if (text == null) {
            throw new NotFoundException(what + ": HTTP 404 KeyNotFound: the value has no top-level key '" + key + "'",
                    404, "KeyNotFound");
        }
        return new Body(text.getBytes(StandardCharsets.UTF_8), false);
    }

    private static String utf8(Body body) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(body.bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("not UTF-8");
        }
    }
}
