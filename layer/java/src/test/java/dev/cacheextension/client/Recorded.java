package dev.cacheextension.client;

import com.sun.net.httpserver.HttpExchange;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** One request as a test double received it. */
final class Recorded {
    final String method;
    final String path;
    final String rawQuery;
    final Map<String, List<String>> headers; // lower-case names
    final int remotePort;

    Recorded(HttpExchange exchange) {
        method = exchange.getRequestMethod();
        path = exchange.getRequestURI().getRawPath();
        rawQuery = exchange.getRequestURI().getRawQuery();
        headers = new HashMap<>();
        for (Map.Entry<String, List<String>> h : exchange.getRequestHeaders().entrySet()) {
            headers.put(h.getKey().toLowerCase(Locale.ROOT), new ArrayList<>(h.getValue()));
        }
        remotePort = exchange.getRemoteAddress().getPort();
    }

    List<String> header(String name) {
        return headers.get(name);
    }
}
