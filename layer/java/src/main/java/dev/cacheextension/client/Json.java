package dev.cacheextension.client;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

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
        Parser parser = new Parser(text, keepNumberText);
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
        Parser parser = new Parser(text, false);
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
        writeValue(out, value, 0);
        return out.toString();
    }

    private static final class Parser {
        private final String text;
        private final boolean keepNumberText;
        private int pos;
        /** When set: each top-level member's name -> [start, end) of its value's text (the last of a name). */
        private Map<String, int[]> spans;

        Parser(String text, boolean keepNumberText) {
            this.text = text;
            this.keepNumberText = keepNumberText;
        }

        IllegalArgumentException error(String what) {
            return new IllegalArgumentException("invalid JSON at offset " + pos + ": " + what);
        }

        void skipWhitespace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        Object value(int depth) {
            if (pos >= text.length()) {
                throw error("unexpected end of input");
            }
            char c = text.charAt(pos);
            switch (c) {
                case '{':
                    return object(depth + 1);
                case '[':
                    return array(depth + 1);
                case '"':
                    return string();
                case 't':
                    literal("true");
                    return Boolean.TRUE;
                case 'f':
                    literal("false");
                    return Boolean.FALSE;
                case 'n':
                    literal("null");
                    return null;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        return number();
                    }
                    throw error("unexpected character");
            }
        }

        private void literal(String word) {
            if (!text.startsWith(word, pos)) {
                throw error("unexpected character");
            }
            pos += word.length();
        }

        private void checkDepth(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("nesting deeper than " + MAX_DEPTH);
            }
        }

        private Map<String, Object> object(int depth) {
            checkDepth(depth);
            pos++; // '{'
            Map<String, Object> map = new LinkedHashMap<>();
            skipWhitespace();
            if (pos < text.length() && text.charAt(pos) == '}') {
                pos++;
                return map;
            }
            while (true) {
                skipWhitespace();
                if (pos >= text.length() || text.charAt(pos) != '"') {
                    throw error(pos >= text.length() ? "unexpected end of input" : "expected a member name");
                }
                String key = string();
                skipWhitespace();
                expect(':', "expected ':'");
                skipWhitespace();
                int start = pos;
                map.put(key, value(depth));
                if (depth == 1 && spans != null) {
                    spans.put(key, new int[] {start, pos});
                }
                skipWhitespace();
                if (pos >= text.length()) {
                    throw error("unexpected end of input");
                }
                char c = text.charAt(pos++);
                if (c == '}') {
                    return map;
                }
                if (c != ',') {
                    pos--;
                    throw error("expected ',' or '}'");
                }
            }
        }

        private List<Object> array(int depth) {
            checkDepth(depth);
            pos++; // '['
            List<Object> list = new ArrayList<>();
            skipWhitespace();
            if (pos < text.length() && text.charAt(pos) == ']') {
                pos++;
                return list;
            }
            while (true) {
                skipWhitespace();
                list.add(value(depth));
                skipWhitespace();
                if (pos >= text.length()) {
                    throw error("unexpected end of input");
                }
                char c = text.charAt(pos++);
                if (c == ']') {
                    return list;
                }
                if (c != ',') {
                    pos--;
                    throw error("expected ',' or ']'");
                }
            }
        }

        private void expect(char c, String what) {
            if (pos >= text.length()) {
                throw error("unexpected end of input");
            }
            if (text.charAt(pos) != c) {
                throw error(what);
            }
            pos++;
        }

        private String string() {
            pos++; // opening quote
            StringBuilder sb = null;
            int start = pos;
            while (true) {
                if (pos >= text.length()) {
                    throw error("unterminated string");
                }
                char c = text.charAt(pos);
                if (c == '"') {
                    String s = sb == null ? text.substring(start, pos) : sb.append(text, start, pos).toString();
                    pos++;
                    return s;
                }
                if (c < 0x20) {
                    throw error("control character in a string");
                }
                if (c != '\\') {
                    pos++;
                    continue;
                }
                if (sb == null) {
                    sb = new StringBuilder();
                }
                sb.append(text, start, pos);
                pos++;
                if (pos >= text.length()) {
                    throw error("unterminated string");
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case '"':
                        sb.append('"');
                        break;
                    case '\\':
                        sb.append('\\');
                        break;
                    case '/':
                        sb.append('/');
                        break;
                    case 'b':
                        sb.append('\b');
                        break;
                    case 'f':
                        sb.append('\f');
                        break;
                    case 'n':
                        sb.append('\n');
                        break;
                    case 'r':
                        sb.append('\r');
                        break;
                    case 't':
                        sb.append('\t');
                        break;
                    case 'u':
                        // Each escape is one UTF-16 unit: a pair such as \ud83d\ude00 becomes one code point.
                        sb.append(hex4());
                        break;
                    default:
                        pos--;
                        throw error("invalid escape");
                }
                start = pos;
            }
        }

        private char hex4() {
            if (pos + 4 > text.length()) {
                throw error("incomplete \\u escape");
            }
            int v = 0;
            for (int i = 0; i < 4; i++) {
                char c = text.charAt(pos);
                int d;
                if (c >= '0' && c <= '9') {
                    d = c - '0';
                } else if (c >= 'a' && c <= 'f') {
                    d = c - 'a' + 10;
                } else if (c >= 'A' && c <= 'F') {
                    d = c - 'A' + 10;
                } else {
                    throw error("invalid \\u escape");
                }
                v = v * 16 + d;
                pos++;
            }
            return (char) v;
        }

        private Number number() {
            int start = pos;
            if (text.charAt(pos) == '-') {
                pos++;
            }
            if (pos < text.length() && text.charAt(pos) == '0') {
                pos++;
            } else if (!digits()) {
                throw error("invalid number");
            }
            if (pos < text.length() && text.charAt(pos) == '.') {
                pos++;
                if (!digits()) {
                    throw error("invalid number");
                }
            }
            if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
                pos++;
                if (pos < text.length() && (text.charAt(pos) == '+' || text.charAt(pos) == '-')) {
                    pos++;
                }
                if (!digits()) {
                    throw error("invalid number");
                }
            }
            try {
                BigDecimal number = new BigDecimal(text.substring(start, pos));
                return keepNumberText ? new WrittenNumber(number, text.substring(start, pos)) : number;
            } catch (NumberFormatException | ArithmeticException e) {
                pos = start;
                throw error("number out of range");
            }
        }

        private boolean digits() {
            int start = pos;
            while (pos < text.length() && text.charAt(pos) >= '0' && text.charAt(pos) <= '9') {
                pos++;
            }
            return pos > start;
        }
    }

    private static void writeValue(StringBuilder out, Object value, int depth) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof CharSequence || value instanceof Character) {
            writeString(out, value.toString());
        } else if (value instanceof Boolean) {
            out.append(value.toString());
        } else if (value instanceof Number) {
            writeNumber(out, (Number) value);
        } else if (value instanceof byte[]) {
            writeString(out, Base64.getEncoder().encodeToString((byte[]) value));
        } else if (value instanceof Map) {
            checkWriteDepth(depth + 1);
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                if (!(entry.getKey() instanceof String)) {
                    throw new IllegalArgumentException("cannot write a map key that is not a String as JSON");
                }
                if (!first) {
                    out.append(',');
                }
                first = false;
                writeString(out, (String) entry.getKey());
                out.append(':');
                writeValue(out, entry.getValue(), depth + 1);
            }
            out.append('}');
        } else if (value instanceof Collection) {
            checkWriteDepth(depth + 1);
            out.append('[');
            boolean first = true;
            for (Object element : (Collection<?>) value) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                writeValue(out, element, depth + 1);
            }
            out.append(']');
        } else if (value.getClass().isArray()) {
            checkWriteDepth(depth + 1);
            out.append('[');
            int length = Array.getLength(value);
            for (int i = 0; i < length; i++) {
                if (i > 0) {
                    out.append(',');
                }
                writeValue(out, Array.get(value, i), depth + 1);
            }
            out.append(']');
        } else {
            throw new IllegalArgumentException("cannot write a " + value.getClass().getName() + " as JSON");
        }
    }

    private static void checkWriteDepth(int depth) {
        if (depth > MAX_DEPTH) {
            throw new IllegalArgumentException("cannot write JSON nested deeper than " + MAX_DEPTH + " (a cycle?)");
        }
    }

    private static void writeNumber(StringBuilder out, Number n) {
        if (n instanceof WrittenNumber) {
            out.append(((WrittenNumber) n).text);
            return;
        }
        if (n instanceof BigDecimal || n instanceof BigInteger || n instanceof Integer || n instanceof Long
                || n instanceof Short || n instanceof Byte || n instanceof AtomicInteger || n instanceof AtomicLong) {
            out.append(n.toString()); // BigDecimal.toString may use an exponent ("1E+3"): valid JSON
            return;
        }
        if (n instanceof Double || n instanceof Float) {
            double d = n.doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw new IllegalArgumentException("cannot write a non-finite number as JSON");
            }
            out.append(n.toString()); // "2.5", "1.0E10": valid JSON
            return;
        }
        try {
            out.append(new BigDecimal(n.toString()).toString());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("cannot write a " + n.getClass().getName() + " as a JSON number");
        }
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static void writeString(StringBuilder out, String s) {
        out.append('"');
        int length = s.length();
        for (int i = 0; i < length; i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                case '\n':
                    out.append("\\n");
                    break;
                case '\r':
                    out.append("\\r");
                    break;
                case '\t':
                    out.append("\\t");
                    break;
                case '\b':
                    out.append("\\b");
                    break;
                case '\f':
                    out.append("\\f");
                    break;
                default:
                    if (c < 0x20 || c == '\u2028' || c == '\u2029') {
                        unicodeEscape(out, c);
                    } else if (Character.isHighSurrogate(c) && i + 1 < length && Character.isLowSurrogate(s.charAt(i + 1))) {
                        out.append(c).append(s.charAt(++i)); // a well-formed pair: written as is
                    } else if (Character.isSurrogate(c)) {
                        unicodeEscape(out, c); // a lone surrogate has no UTF-8 form: escape it
                    } else {
                        out.append(c);
                    }
            }
        }
        out.append('"');
    }

    private static void unicodeEscape(StringBuilder out, char c) {
        out.append("\\u").append(HEX[(c >> 12) & 0xf]).append(HEX[(c >> 8) & 0xf])
                .append(HEX[(c >> 4) & 0xf]).append(HEX[c & 0xf]);
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
