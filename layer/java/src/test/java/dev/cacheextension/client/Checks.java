package dev.cacheextension.client;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Locale;
import java.util.Map;

/** Assertions the JUnit ones do not have: about messages (that must never carry a secret) and elapsed time. */
final class Checks {

    static final String TOKEN = "session-token-4f1b";
    static final String SECRET = "s3cr3t-value-9c2e";

    private Checks() {
    }

    static void contains(String text, String part) {
        if (text == null || !text.contains(part)) {
            fail("'" + text + "' does not contain '" + part + "'");
        }
    }

    /** Fails without repeating either text: the part may be a secret. */
    static void notContains(String text, String part) {
        if (text != null && text.contains(part)) {
            fail("a message contains what it must not");
        }
    }

    /** Neither the exception nor any of its causes mentions the secret, in its message or its toString(). */
    static void noLeak(Throwable e, String secret) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            notContains(t.getMessage(), secret);
            notContains(t.toString(), secret);
        }
    }

    /** Less than ms milliseconds have passed since startNanos. */
    static void below(long startNanos, long ms) {
        long took = (System.nanoTime() - startNanos) / 1_000_000;
        if (took >= ms) {
            fail("took " + took + " ms, expected under " + ms);
        }
    }

    /** Json.parse refuses the text with an IllegalArgumentException whose message names an offset. */
    static void rejects(String text) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(text),
                () -> "accepted invalid JSON " + describe(text));
        if (!e.getMessage().startsWith("invalid JSON at offset ")) {
            fail("unexpected message for " + describe(text) + ": " + e.getMessage());
        }
    }

    /** The text for a failure message: at most 40 characters, control and non-ASCII ones escaped. */
    static String describe(String text) {
        String s = text.length() > 40 ? text.substring(0, 40) + "..." : text;
        StringBuilder out = new StringBuilder("<");
        for (char c : s.toCharArray()) {
            out.append(c < 0x20 || c > 0x7e ? String.format(Locale.ROOT, "\\u%04x", (int) c) : String.valueOf(c));
        }
        return out.append('>').toString();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asMap(Object value) {
        return (Map<String, Object>) value;
    }
}
