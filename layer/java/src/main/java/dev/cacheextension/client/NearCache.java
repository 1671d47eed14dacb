package dev.cacheextension.client;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A client's near cache: the raw answers (body and content type) the extension sent with
 * {@code Cache-Control: max-age=N}, N &gt; 0, kept by route and name until N seconds after the answer arrived, on
 * the monotonic {@link System#nanoTime()} clock. The extension's N is the whole seconds of freshness it has left,
 * rounded down, so a kept answer never outlives the extension's own copy.
 *
 * <p>A hit is two {@link ConcurrentHashMap} lookups and a clock read, with no lock. Keeping, dropping and
 * evicting take this object's lock. A drop ({@link #drop}, {@link #dropAll}) also counts a generation, so that an
 * answer that was in flight while it happened is not kept afterwards. At most {@link #MAX_ENTRIES} answers are
 * kept: when full, the expired ones go, and if that is not enough, the oldest kept.
 *
 * @param <V> what is kept (the client's raw answer)
 */
final class NearCache<V> {

    /** The environment variable that turns the near cache on or off. */
    static final String VARIABLE = "CACHE_EXTENSION_CLIENT_CACHE";
    /** At most this many answers are kept per client. */
    static final int MAX_ENTRIES = 1000;
    /** A larger max-age counts as this: its nanoseconds still fit a long. */
    private static final long MAX_AGE_CAP_SECONDS = 1L << 31;

    private static final class Entry<V> {
        final V value;
        final long expires; // System.nanoTime() value; compare by difference
        final long inserted;

        Entry(V value, long expires, long inserted) {
            this.value = value;
            this.expires = expires;
            this.inserted = inserted;
        }
    }

    /** Route, then name: a hit makes no key object. */
    private final Map<String, ConcurrentHashMap<String, Entry<V>>> routes = new ConcurrentHashMap<>();
    private volatile long generation;
    private long inserted; // under the lock

    /**
     * Whether a client has a near cache: {@code option} when set, else {@link #VARIABLE} from {@code env}:
     * on/off, true/false, 1/0, yes/no in any case; unset or empty is on.
     *
     * @throws CacheExtensionException (status 0) for any other value; the message names the variable and the
     *                                 accepted values, not the value
     */
    static boolean enabled(Boolean option, Map<String, String> env) {
        if (option != null) {
            return option;
        }
        String text = env.get(VARIABLE);
        if (text == null || text.isEmpty()) {
            return true;
        }
        switch (text.toLowerCase(Locale.ROOT)) {
            case "on":
            case "true":
            case "1":
            case "yes":
                return true;
            case "off":
            case "false":
            case "0":
            case "no":
                return false;
            default:
                throw new CacheExtensionException(VARIABLE + " is not one of on, off, true, false, 1, 0, yes, no"
                        + " (any case; empty counts as unset, which is on)");
        }
    }

    /**
     * The seconds an answer with these {@code Cache-Control} header values may be kept: its max-age, else 0 (not
     * kept) when there is none, when it is not digits, or with {@code no-store} or {@code no-cache}. Directives
     * are separated by commas, in any case, with any whitespace; a quoted max-age is accepted; the last one wins.
     */
    static long maxAge(List<String> cacheControl) {
        long maxAge = 0;
        for (String header : cacheControl) {
            for (String directive : header.split(",", -1)) {
                int equals = directive.indexOf('=');
                String key = (equals < 0 ? directive : directive.substring(0, equals)).trim().toLowerCase(Locale.ROOT);
                if (key.equals("no-store") || key.equals("no-cache")) {
                    return 0;
                }
                if (!key.equals("max-age")) {
                    continue;
                }
                String digits = equals < 0 ? "" : directive.substring(equals + 1).trim();
                if (digits.length() >= 2 && digits.startsWith("\"") && digits.endsWith("\"")) {
                    digits = digits.substring(1, digits.length() - 1);
                }
                if (digits.isEmpty() || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) {
                    return 0;
                }
                digits = digits.replaceFirst("^0+(?=.)", "");
                maxAge = digits.length() > 10 ? MAX_AGE_CAP_SECONDS : Math.min(Long.parseLong(digits), MAX_AGE_CAP_SECONDS);
            }
        }
        return maxAge;
    }

    /** The value kept for this route and name while it is fresh, else null. No lock. */
    V get(String route, String name) {
        ConcurrentHashMap<String, Entry<V>> names = routes.get(route);
        Entry<V> entry = names == null ? null : names.get(name);
        if (entry == null) {
            return null;
        }
        if (System.nanoTime() - entry.expires < 0) {
            return entry.value;
        }
        names.remove(name, entry); // expired: free it now (a newer entry stays)
        return null;
    }

    /** Read before sending a request whose answer may be kept; pass it to {@link #keep}. */
    long generation() {
        return generation;
    }

    /**
     * Keeps {@code value} for {@code maxAgeSeconds} (0: not kept) from {@code arrivedNanos}, unless a drop
     * happened since {@code generation} was read (the answer may predate a refresh).
     */
    synchronized void keep(String route, String name, V value, long maxAgeSeconds, long arrivedNanos, long generation) {
        if (maxAgeSeconds <= 0 || generation != this.generation) {
            return;
        }
        ConcurrentHashMap<String, Entry<V>> names = routes.computeIfAbsent(route, r -> new ConcurrentHashMap<>());
        if (!names.containsKey(name) && size() >= MAX_ENTRIES) {
            evict();
        }
        names.put(name, new Entry<>(value, arrivedNanos + maxAgeSeconds * 1_000_000_000L, ++inserted));
    }

    /** Drops what is kept for {@code name} in {@code route}, or in every route when it is null. */
    synchronized void drop(String route, String name) {
        generation++;
        for (Map.Entry<String, ConcurrentHashMap<String, Entry<V>>> names : routes.entrySet()) {
            if (route == null || route.equals(names.getKey())) {
                names.getValue().remove(name);
            }
        }
    }

    /** Drops everything kept. */
    synchronized void dropAll() {
        generation++;
        for (ConcurrentHashMap<String, Entry<V>> names : routes.values()) {
            names.clear();
        }
    }

    /** How many answers are kept, expired ones included until they are removed. */
    int size() {
        int size = 0;
        for (ConcurrentHashMap<String, Entry<V>> names : routes.values()) {
            size += names.size();
        }
        return size;
    }

    /** Under the lock, when full: removes the expired entries, and if none was, the oldest kept. */
    private void evict() {
        long now = System.nanoTime();
        for (ConcurrentHashMap<String, Entry<V>> names : routes.values()) {
            names.values().removeIf(entry -> now - entry.expires >= 0);
        }
        if (size() < MAX_ENTRIES) {
            return;
        }
        ConcurrentHashMap<String, Entry<V>> oldestNames = null;
        String oldest = null;
        long oldestInserted = Long.MAX_VALUE;
        for (ConcurrentHashMap<String, Entry<V>> names : routes.values()) {
            for (Map.Entry<String, Entry<V>> entry : names.entrySet()) {
                if (entry.getValue().inserted < oldestInserted) {
                    oldestInserted = entry.getValue().inserted;
                    oldest = entry.getKey();
                    oldestNames = names;
                }
            }
        }
        if (oldestNames != null) {
            oldestNames.remove(oldest);
        }
    }
}
