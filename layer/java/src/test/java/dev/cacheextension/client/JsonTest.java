package dev.cacheextension.client;

import static dev.cacheextension.client.Checks.SECRET;
import static dev.cacheextension.client.Checks.asMap;
import static dev.cacheextension.client.Checks.contains;
import static dev.cacheextension.client.Checks.notContains;
import static dev.cacheextension.client.Checks.rejects;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The client's JSON reader (exact numbers, strict syntax, bounded nesting) and writer. */
@Timeout(30)
class JsonTest {

    @Test
    @DisplayName("json: objects keep member order, arrays, literals")
    void objectsKeepMemberOrder() {
        Object parsed = Json.parse(" {\"b\": [1, true, false, null, \"x\"], \"a\": {}, \"c\": []} ");
        Map<String, Object> map = asMap(parsed);
        assertEquals(Arrays.asList("b", "a", "c"), new ArrayList<>(map.keySet()));
        assertEquals(LinkedHashMap.class, map.getClass());
        List<?> b = (List<?>) map.get("b");
        assertEquals(ArrayList.class, b.getClass());
        assertEquals(new BigDecimal("1"), b.get(0));
        assertEquals(Boolean.TRUE, b.get(1));
        assertEquals(Boolean.FALSE, b.get(2));
        assertNull(b.get(3));
        assertEquals("x", b.get(4));
        assertEquals(Collections.emptyMap(), map.get("a"));
        assertEquals(Collections.emptyList(), map.get("c"));
    }

    @Test
    @DisplayName("json: top-level scalars and surrounding whitespace")
    void topLevelScalars() {
        assertEquals("a", Json.parse("\"a\""));
        assertNull(Json.parse("null"));
        assertEquals(Boolean.TRUE, Json.parse("\t\r\n true \n"));
        assertEquals(new BigDecimal("-0"), Json.parse("-0"));
    }

    @Test
    @DisplayName("json: numbers are exact BigDecimals")
    void numbersAreExact() {
        String big = "123456789012345678901234567890.123456789012345678901234567890";
        assertEquals(new BigDecimal(big), Json.parse(big));
        assertEquals(big, ((BigDecimal) Json.parse(big)).toPlainString());
        assertEquals(new BigDecimal("9007199254740993"), Json.parse("9007199254740993")); // 2^53 + 1
        assertEquals(new BigDecimal("1E+400"), Json.parse("1e400"));
        assertEquals(new BigDecimal("-2.5E-7"), Json.parse("-2.5E-7"));
        assertEquals(new BigDecimal("1E+2"), Json.parse("1E+2"));
        assertEquals(new BigDecimal("0.10"), Json.parse("0.10")); // scale kept: "0.10" stays 0.10
    }

    @Test
    @DisplayName("json: string escapes")
    void stringEscapes() {
        assertEquals("\" \\ / \b \f \n \r \t", Json.parse("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""));
        assertEquals("é\u0000\u001f", Json.parse("\"\\u00e9\\u0000\\u001F\""));
        assertEquals("é and ü raw", Json.parse("\"é and ü raw\""));
    }

    @Test
    @DisplayName("json: surrogate pairs, escaped and raw")
    void surrogatePairs() {
        String s = (String) Json.parse("\"\\ud83d\\ude00|\\uD834\\uDD1E|😀\"");
        assertEquals(0x1F600, s.codePointAt(0));
        assertEquals(0x1D11E, s.codePointAt(3));
        assertEquals(0x1F600, s.codePointAt(6));
        assertEquals(8, s.length());
    }

    @Test
    @DisplayName("json: a repeated member keeps the last value")
    void repeatedMemberKeepsLast() {
        assertEquals(new BigDecimal("2"), asMap(Json.parse("{\"a\": 1, \"a\": 2}")).get("a"));
    }

    @Test
    @DisplayName("json: nesting up to 512 levels, not 513")
    void nestingBound() {
        Json.parse("[".repeat(512) + "]".repeat(512));
        Json.parse("{\"a\":".repeat(511) + "[]" + "}".repeat(511));
        rejects("[".repeat(513) + "]".repeat(513));
        rejects("{\"a\":".repeat(513) + "1" + "}".repeat(513));
        rejects("[".repeat(100_000)); // an error, not a StackOverflowError
    }

    @Test
    @DisplayName("json: malformed inputs are rejected")
    void malformedInputsRejected() {
        String[] bad = {"", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "{\"a\" 1}", "{\"a\":}",
            "{1:2}", "{'a':1}", "[1 2]", "[]]", "{}{}", "1 2", "01", "-01", "1.", ".5", "+1", "-", "1e", "1e+",
            "0x10", "1_000", "NaN", "Infinity", "-Infinity", "tru", "nul", "True", "nulll", "'a'", "\"abc",
            "\"\\x\"", "\"\\u12G4\"", "\"\\u00e\"", "\"\\u", "\"\\", "\"a\nb\"", "\"tab\there\"",
            "\uFEFF1", "\u00a01", "/* c */1", "[1]x", "1e999999999999", "\"\\u\u0660\u0660\u0660\u0660\""};
        for (String text : bad) {
            rejects(text);
        }
    }

    @Test
    @DisplayName("json: parse errors name an offset, never the text")
    void parseErrorsNameAnOffset() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Json.parse("{\"password\": \"" + SECRET + "\" x}"));
        contains(e.getMessage(), "offset");
        notContains(e.getMessage(), SECRET);
    }

    @Test
    @DisplayName("json: write compact objects, arrays, scalars")
    void writeCompact() {
        Map<String, Object> map = new LinkedHashMap<>();
        map.put("s", "x");
        map.put("n", 1);
        map.put("l", 2L);
        map.put("d", 2.5);
        map.put("b", true);
        map.put("z", null);
        map.put("list", Arrays.asList(1, "two", null));
        map.put("arr", new int[] {1, 2});
        map.put("objs", new Object[] {Collections.emptyMap(), new ArrayList<>()});
        assertEquals("{\"s\":\"x\",\"n\":1,\"l\":2,\"d\":2.5,\"b\":true,\"z\":null,\"list\":[1,\"two\",null],"
                + "\"arr\":[1,2],\"objs\":[{},[]]}", Json.write(map));
        assertEquals("null", Json.write(null));
        assertEquals("\"c\"", Json.write('c'));
    }

    @Test
    @DisplayName("json: write numbers exactly")
    void writeNumbersExactly() {
        assertEquals("123456789012345678901234567890.000000000000000000001",
                Json.write(new BigDecimal("123456789012345678901234567890.000000000000000000001")));
        assertEquals("123456789012345678901234567890", Json.write(new BigInteger("123456789012345678901234567890")));
        assertEquals(new BigDecimal("1E+400"), Json.parse(Json.write(new BigDecimal("1E+400"))));
        assertEquals("1.0E10", Json.write(1e10));
        assertEquals(new BigDecimal("1.0E10"), Json.parse(Json.write(1e10)));
        assertEquals("-7", Json.write((short) -7));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Float.POSITIVE_INFINITY));
    }

    @Test
    @DisplayName("json: write escapes strings")
    void writeEscapesStrings() {
        assertEquals("\"q\\\" b\\\\ s/ \\n\\r\\t\\b\\f \\u0000\\u001f \\u2028\"",
                Json.write("q\" b\\ s/ \n\r\t\b\f \u0000\u001f \u2028"));
        assertEquals("\"é😀\"", Json.write("é😀")); // a well-formed pair stays as it is
        assertEquals("\"\\ud83d|\\ude00\"", Json.write("\ud83d|\ude00")); // lone surrogates are escaped
        String tricky = "\"\\/\u0001\uffff😀 \ud800";
        assertEquals(tricky, Json.parse(Json.write(tricky)));
    }

    @Test
    @DisplayName("json: write byte[] as base64")
    void writeBytesAsBase64() {
        assertEquals("\"AP8BAg==\"", Json.write(new byte[] {0, (byte) 0xff, 1, 2}));
        assertEquals("{\"k\":\"\"}", Json.write(Collections.singletonMap("k", new byte[0])));
    }

    @Test
    @DisplayName("json: write refuses other types, non-String keys and cycles")
    void writeRefusesOtherTypes() {
        assertThrows(IllegalArgumentException.class, () -> Json.write(new Object()));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Collections.singletonMap(1, "x")));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Collections.singletonMap(null, "x")));
        List<Object> cycle = new ArrayList<>();
        cycle.add(cycle);
        assertThrows(IllegalArgumentException.class, () -> Json.write(cycle));
    }

    @Test
    @DisplayName("json: write then parse round-trips")
    void writeThenParseRoundTrips() {
        Object value = Json.parse("{\"a\":[1,2.50,-3e-5,{\"b\":null,\"c\":\"\\u0000é😀\"}],\"d\":true,\"e\":\"\"}");
        assertEquals(value, Json.parse(Json.write(value)));
    }
}
