package dev.cacheextension.client;

import java.math.BigDecimal;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;

/**
 * A small, strict JSON (RFC 8259) reader and writer, so that the client needs no library.
 *
 * <p>{@link #parse(String)} maps objects to {@code LinkedHashMap<String, Object>} (member order kept; a
 * repeated member name keeps the last value), arrays to {@code ArrayList<Object>}, numbers to
 * {@link BigDecimal} (every digit kept), strings to {@link String}, {@code true}/{@code false} to
 * {@link Boolean} and {@code null} to {@code null}. Anything outside the grammar is refused with an
 * {@link IllegalArgumentException} whose message gives the offset but never quotes the input, which may be
 * a secret.
 *
 * <p>{@link #write(Object)} writes compact JSON.
 */
public final class Json {

    /** The deepest nesting of arrays and objects accepted by {@link #parse} and {@link #write}. */
    public static final int MAX_DEPTH = 512;

    private Json() {
    }

    /**
     * Parses one JSON text (surrounding whitespace allowed, nothing else after the value).
     *
     * @throws IllegalArgumentException if the text is not valid JSON or nests deeper than {@link #MAX_DEPTH}
     */
    public static Object parse(String text) {
        return parse(text, false);
    }

    /**
     * As {@link #parse(String)}, but with {@code keepNumberText} every number is a {@link WrittenNumber} that
     * {@link #write} writes as it was written (1.50 stays 1.50, 1e3 stays 1e3): for the offline values file.
     */
    static Object parse(String text, boolean keepNumberText) {
        Objects.requireNonNull(text, "text");
        JsonParser parser = new JsonParser(text, keepNumberText);
        parser.skipWhitespace();
        Object value = parser.value(0);
        parser.skipWhitespace();
        if (parser.pos < text.length()) {
            throw parser.error("unexpected data after the value");
        }
        return value;
    }

    /**
     * For a read with a key: the text of the top-level member {@code key} of the JSON object {@code text}, as the
     * extension's {@code key=} has it: a string member's text, any other member's JSON text exactly as written
     * (1.50 stays 1.50); the last of a repeated key counts. {@code null} when the object has no such key.
     *
     * @throws IllegalArgumentException if the text is not valid JSON or not a JSON object (its message gives an
     *                                  offset at most, never the text)
     */
    static String member(String text, String key) {
        Objects.requireNonNull(text, "text");
        JsonParser parser = new JsonParser(text, false);
        parser.spans = new HashMap<>();
        parser.skipWhitespace();
        if (parser.pos >= text.length() || text.charAt(parser.pos) != '{') {
            throw new IllegalArgumentException("not a JSON object");
        }
        Object value = parser.value(0);
        parser.skipWhitespace();
        if (parser.pos < text.length()) {
            throw parser.error("unexpected data after the value");
        }
        Map<?, ?> object = (Map<?, ?>) value;
        if (!object.containsKey(key)) {
            return null;
        }
        Object found = object.get(key);
        if (found instanceof String) {
            return (String) found;
        }
        int[] span = parser.spans.get(key);
        return text.substring(span[0], span[1]);
    }

    /**
     * Writes a value as compact JSON: {@code Map} (String keys) as an object, {@code Collection} and arrays
     * as arrays, {@code byte[]} as a base64 string, {@code CharSequence} and {@code Character} as strings,
     * {@code Number} (finite) as a number, {@code Boolean} and {@code null} as themselves.
     *
     * @throws IllegalArgumentException for any other type, a non-String key, a non-finite number or nesting
     *                                  deeper than {@link #MAX_DEPTH} (which includes a cycle)
     */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        JsonWriter.writeValue(out, value, 0);
        return out.toString();
    }

    /** A number of a JSON text with the text it was written as (see {@link #parse(String, boolean)}). */
    static final class WrittenNumber extends Number {
        private static final long serialVersionUID = 1L;
        final BigDecimal value;
        final String text;

        WrittenNumber(BigDecimal value, String text) {
            this.value = value;
            this.text = text;
        }

        @Override
        public int intValue() {
            return value.intValue();
        }

        @Override
        public long longValue() {
            return value.longValue();
        }

        @Override
        public float floatValue() {
            return value.floatValue();
        }

        @Override
        public double doubleValue() {
            return value.doubleValue();
        }

        @Override
        public String toString() {
            return text;
        }
    }
}
