package dev.cacheextension.client;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Base64;
import java.util.Collection;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/** {@link Json#write}'s writer: compact JSON, a number as written when it was read with its text kept. */
final class JsonWriter {

    private JsonWriter() {
    }

    static void writeValue(StringBuilder out, Object value, int depth) {
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
        if (depth > Json.MAX_DEPTH) {
            throw new IllegalArgumentException("cannot write JSON nested deeper than " + Json.MAX_DEPTH + " (a cycle?)");
        }
    }

    private static void writeNumber(StringBuilder out, Number n) {
        if (n instanceof Json.WrittenNumber) {
            out.append(((Json.WrittenNumber) n).text);
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
}
