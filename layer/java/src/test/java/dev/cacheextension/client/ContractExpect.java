package dev.cacheextension.client;

import java.math.BigDecimal;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** A contract case's "expect" of a call that returned: value, json, includes, exact, base64 (cases.json's "about"). */
final class ContractExpect {

    private ContractExpect() {
    }

    /** Null when the result is what the case expects, else why not (naming types and paths, never values). */
    static String check(Map<String, Object> expect, Object result) {
        if (expect.containsKey("error")) {
            return "expected error " + expect.get("error") + ", got a " + typeOf(result);
        }
        if (expect.containsKey("value")) {
            return expect.get("value").equals(result) ? null : "value differs (got a " + typeOf(result) + ")";
        }
        if (expect.containsKey("json")) {
            String diff = diff(expect.get("json"), result, "$");
            return diff == null ? null : "json differs at " + diff;
        }
        if (expect.containsKey("includes")) {
            return includes(result, expect.get("includes")) ? null : "does not include " + Json.write(expect.get("includes"))
                    + ": " + Json.write(result);
        }
        if (expect.containsKey("exact")) {
            return exact(result, ContractRun.asMap(expect.get("exact")));
        }
        if (expect.containsKey("base64")) {
            if (!(result instanceof byte[])) {
                return "expected bytes, got a " + typeOf(result);
            }
            byte[] want = Base64.getDecoder().decode((String) expect.get("base64"));
            return Arrays.equals(want, (byte[]) result) ? null : "bytes differ";
        }
        return "test error: nothing to expect";
    }

    /** Adds what a message must never contain: the expected texts, JSON texts and longer JSON strings. */
    static void collectValues(Map<String, Object> expect, Set<String> values) {
        if (expect.get("value") instanceof String) {
            values.add((String) expect.get("value"));
        }
        if (expect.get("base64") instanceof String) {
            values.add((String) expect.get("base64"));
        }
        if (expect.containsKey("json")) {
            Object json = expect.get("json");
            values.add(Json.write(json));
            collectStrings(json, values);
        }
        values.removeIf(text -> text.length() < 6); // "true", "5": in any sentence
    }

    /** Strings inside expected JSON, from 8 characters up (shorter ones, like "x", occur in any sentence). */
    private static void collectStrings(Object json, Set<String> values) {
        if (json instanceof String && ((String) json).length() >= 8) {
            values.add((String) json);
        } else if (json instanceof Map) {
            for (Object v : ((Map<?, ?>) json).values()) {
                collectStrings(v, values);
            }
        } else if (json instanceof List) {
            for (Object v : (List<?>) json) {
                collectStrings(v, values);
            }
        }
    }

    /** The "exact" expectation: at each path (member names and array indexes joined by "."), a BigDecimal equal
     * in value to the decimal text (compareTo, so 1.50 equals 1.5); null when every one is. */
    private static String exact(Object result, Map<String, Object> exact) {
        for (Map.Entry<String, Object> entry : exact.entrySet()) {
            Object got = result;
            for (String step : entry.getKey().split("\\.")) {
                got = got instanceof List ? ((List<?>) got).get(Integer.parseInt(step))
                        : got instanceof Map ? ((Map<?, ?>) got).get(step) : null;
            }
            if (!(got instanceof BigDecimal)) {
                return entry.getKey() + ": expected a BigDecimal, got a " + typeOf(got);
            }
            if (((BigDecimal) got).compareTo(new BigDecimal((String) entry.getValue())) != 0) {
                return entry.getKey() + ": " + got + " is not " + entry.getValue();
            }
        }
        return null;
    }

    /** The "includes" expectation: objects may have more members, arrays more elements, in any order. */
    private static boolean includes(Object got, Object want) {
        if (want instanceof Map) {
            if (!(got instanceof Map)) {
                return false;
            }
            Map<?, ?> g = (Map<?, ?>) got;
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) want).entrySet()) {
                if (!g.containsKey(entry.getKey()) || !includes(g.get(entry.getKey()), entry.getValue())) {
                    return false;
                }
            }
            return true;
        }
        if (want instanceof List) {
            if (!(got instanceof List)) {
                return false;
            }
            for (Object w : (List<?>) want) {
                if (((List<?>) got).stream().noneMatch(g -> includes(g, w))) {
                    return false;
                }
            }
            return true;
        }
        return diff(want, got, "$") == null;
    }

    /** Where two JSON values differ (numbers compared as numbers), or null when equal. */
    private static String diff(Object want, Object got, String path) {
        if (want instanceof Map) {
            if (!(got instanceof Map)) {
                return path + " (expected an object, got a " + typeOf(got) + ")";
            }
            Map<?, ?> w = (Map<?, ?>) want;
            Map<?, ?> g = (Map<?, ?>) got;
            if (!w.keySet().equals(g.keySet())) {
                return path + " (keys " + g.keySet() + ", expected " + w.keySet() + ")";
            }
            for (Map.Entry<?, ?> entry : w.entrySet()) {
                String d = diff(entry.getValue(), g.get(entry.getKey()), path + "." + entry.getKey());
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        if (want instanceof List) {
            if (!(got instanceof List)) {
                return path + " (expected an array, got a " + typeOf(got) + ")";
            }
            List<?> w = (List<?>) want;
            List<?> g = (List<?>) got;
            if (w.size() != g.size()) {
                return path + " (" + g.size() + " elements, expected " + w.size() + ")";
            }
            for (int i = 0; i < w.size(); i++) {
                String d = diff(w.get(i), g.get(i), path + "[" + i + "]");
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        if (want instanceof Number) {
            if (!(got instanceof Number)) {
                return path + " (expected a number, got a " + typeOf(got) + ")";
            }
            return new BigDecimal(want.toString()).compareTo(new BigDecimal(got.toString())) == 0 ? null : path;
        }
        if (want == null) {
            return got == null ? null : path + " (expected null, got a " + typeOf(got) + ")";
        }
        return want.equals(got) ? null : path + " (" + typeOf(got) + " differs)";
    }

    static String typeOf(Object value) {
        return value == null ? "null" : value.getClass().getSimpleName();
    }
}
