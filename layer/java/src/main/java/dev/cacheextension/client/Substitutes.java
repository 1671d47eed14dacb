package dev.cacheextension.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The values a client serves instead of asking the extension (for unit tests of a handler): from
 * {@link CacheClient.Builder#values(Map)} or the JSON file named by {@link CacheClient#VALUES_VARIABLE}, checked
 * and frozen as {@link Body}s by source, then name.
 */
final class Substitutes {

    private Substitutes() {
    }

    /** The substituted values named by CACHE_EXTENSION_CLIENT_VALUES, or null when it is not set. */
    static Map<String, Map<String, Body>> fromEnvironment(Map<String, String> env) {
        String path = env.get(CacheClient.VALUES_VARIABLE);
        if (path == null || path.isEmpty()) {
            return null;
        }
        String where = CacheClient.VALUES_VARIABLE + " file " + path;
        String text;
        try {
            text = Files.readString(Path.of(path), StandardCharsets.UTF_8);
        } catch (IOException | RuntimeException e) {
            throw new CacheExtensionException("cannot read the " + where + " (" + e.getClass().getSimpleName() + ")");
        }
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        Object parsed;
        try {
            parsed = Json.parse(text, true); // numbers of JSON values read back as written
        } catch (IllegalArgumentException e) {
            throw new CacheExtensionException("the " + where + " is not valid JSON: " + e.getMessage());
        }
        if (!(parsed instanceof Map)) {
            throw new CacheExtensionException("the " + where + " must hold a JSON object");
        }
        try {
            return of((Map<?, ?>) parsed, "the " + where);
        } catch (IllegalArgumentException e) {
            throw new CacheExtensionException(e.getMessage());
        }
    }

    /**
     * Validates and freezes substituted values, by the rule every client follows: a parameter or secret given as a
     * String is the value as stored in AWS (a byte[] a binary value); any other JSON value (Map, List, Number,
     * Boolean) stands for a value whose text is that JSON: read as its compact JSON text, parsed by
     * Transform.JSON, refused by Transform.BINARY. null is refused. DynamoDB items must be Maps. A refusal names
     * the section and the name, never the value (it may be a secret).
     */
    static Map<String, Map<String, Body>> of(Map<?, ?> given, String where) {
        Map<String, Map<String, Body>> result = new LinkedHashMap<>();
        result.put(CacheClient.PARAMETERS, Collections.emptyMap());
        result.put(CacheClient.SECRETS, Collections.emptyMap());
        result.put(CacheClient.DYNAMODB, Collections.emptyMap());
        for (Map.Entry<?, ?> source : given.entrySet()) {
            Object key = source.getKey();
            if (!result.containsKey(key)) {
                throw new IllegalArgumentException(where + ": unknown key '" + key
                        + "' (expected parameters, secrets, dynamodb)");
            }
            if (!(source.getValue() instanceof Map)) {
                throw new IllegalArgumentException(where + ": '" + key + "' must map names to values");
            }
            Map<String, Body> bodies = new LinkedHashMap<>();
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) source.getValue()).entrySet()) {
                if (!(entry.getKey() instanceof String)) {
                    throw new IllegalArgumentException(where + ": the names under '" + key + "' must be strings");
                }
                String name = (String) entry.getKey();
                Object value = entry.getValue();
                Body body;
                if (CacheClient.DYNAMODB.equals(key) && !(value instanceof Map)) {
                    throw new IllegalArgumentException(where + ": dynamodb '" + name + "' must be an item, a JSON"
                            + " object (a Map), not " + kind(value));
                } else if (value == null) {
                    throw new IllegalArgumentException(where + ": " + key + " '" + name + "' is null: give a string"
                            + " (the value as stored in AWS) or a JSON value");
                } else if (value instanceof String) {
                    body = new Body(((String) value).getBytes(StandardCharsets.UTF_8), false);
                } else if (value instanceof byte[]) {
                    body = new Body(((byte[]) value).clone(), true);
                } else {
                    try {
                        body = new Body(Json.write(value).getBytes(StandardCharsets.UTF_8), false,
                                !CacheClient.DYNAMODB.equals(key));
                    } catch (IllegalArgumentException e) {
                        throw new IllegalArgumentException(where + ": " + key + " '" + name + "': " + e.getMessage());
                    }
                }
                bodies.put(name, body);
            }
            result.put((String) key, Collections.unmodifiableMap(bodies));
        }
        return Collections.unmodifiableMap(result);
    }

    /** What a refused value is, by its JSON kind: never its content. */
    private static String kind(Object value) {
        if (value == null) {
            return "null";
        } else if (value instanceof CharSequence) {
            return "a string";
        } else if (value instanceof Number) {
            return "a number";
        } else if (value instanceof Boolean) {
            return "a boolean";
        } else if (value instanceof java.util.Collection || value.getClass().isArray()) {
            return "an array";
        }
        return "a " + value.getClass().getSimpleName();
    }
}
