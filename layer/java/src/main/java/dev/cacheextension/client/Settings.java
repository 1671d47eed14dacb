package dev.cacheextension.client;

import java.util.Map;

/** The port and the token: checked when given to the builder, else taken from the environment as the extension does. */
final class Settings {

    private Settings() {
    }

    static int portFromEnvironment(Map<String, String> env) {
        for (String name : CacheClient.PORT_VARIABLES) {
            String text = env.get(name);
            if (text == null || text.trim().isEmpty()) {
                continue; // empty counts as unset, as for the extension (blank too, as this client always took it)
            }
            try {
                return checkPort(Integer.parseInt(text.trim()), name);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(name + " is not a port number: '" + text + "'");
            }
        }
        return CacheClient.DEFAULT_PORT;
    }

    static int checkPort(int port, String what) {
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException(what + " is not a port number (1-65535): " + port);
        }
        return port;
    }

    static String checkToken(String token) {
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                throw new IllegalArgumentException("the token contains a character that cannot be sent in an HTTP header");
            }
        }
        if (token.trim().length() != token.length()) {
            throw new IllegalArgumentException("the token starts or ends with a space");
        }
        return token;
    }

    /** The first non-empty of {@link CacheClient#TOKEN_VARIABLES} in {@code env}, checked; null for none. */
    static String tokenFromEnvironment(Map<String, String> env) {
        String chosen = null;
        for (int i = 0; chosen == null && i < CacheClient.TOKEN_VARIABLES.size(); i++) {
            String value = env.get(CacheClient.TOKEN_VARIABLES.get(i));
            chosen = value == null || value.isEmpty() ? null : value;
        }
        return chosen == null ? null : checkToken(chosen);
    }
}
