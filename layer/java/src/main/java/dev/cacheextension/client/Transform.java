package dev.cacheextension.client;

/** How a value is decoded, as in Powertools Parameters' {@code transform}. */
public enum Transform {
    /**
     * Parse the value as JSON: a {@code Map<String, Object>}, {@code List<Object>}, {@code String},
     * {@code BigDecimal}, {@code Boolean} or {@code null} (see {@link Json#parse}).
     */
    JSON,
    /**
     * The value as bytes ({@code byte[]}): a binary secret's bytes as they are, any other value decoded from
     * base64.
     */
    BINARY
}
