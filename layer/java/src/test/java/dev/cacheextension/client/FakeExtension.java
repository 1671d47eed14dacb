package dev.cacheextension.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A test double of the extension's HTTP surface (com.sun.net.httpserver on an ephemeral loopback port) that
 * records every request and answers what its {@link Responder} says.
 */
final class FakeExtension implements AutoCloseable {

    /** An answer: status, Content-Type, body, and any more headers. */
    static final class Reply {
        final int status;
        final String contentType;
        final byte[] body;
        final Map<String, String> headers = new LinkedHashMap<>();

        Reply(int status, String contentType, String body) {
            this(status, contentType, body.getBytes(StandardCharsets.UTF_8));
        }

        Reply(int status, String contentType, byte[] body) {
            this.status = status;
            this.contentType = contentType;
            this.body = body;
        }

        /** This reply with one more header (a null value: none). */
        Reply header(String name, String value) {
            if (value != null) {
                headers.put(name, value);
            }
            return this;
        }
    }

    interface Responder {
        /** The reply to the n-th request (from 0). */
        Reply reply(Recorded request, int n);
    }

    /** Answers 200 with this text. */
    static Responder ok(String text) {
        return (r, n) -> new Reply(200, "text/plain; charset=utf-8", text);
    }

    /** An error answer in the extension's form: {"error": code, "message": message}. */
    static Reply json(int status, String code, String message) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("error", code);
        body.put("message", message);
        return new Reply(status, "application/json", Json.write(body));
    }

    static Thread daemon(Runnable r) {
        Thread t = new Thread(r);
        t.setDaemon(true);
        return t;
    }

    final List<Recorded> requests = Collections.synchronizedList(new ArrayList<>());
    private final HttpServer server;
    private final ExecutorService executor = Executors.newFixedThreadPool(8, FakeExtension::daemon);
    private final Responder responder;
    private final AtomicInteger count = new AtomicInteger();

    FakeExtension(Responder responder) throws IOException {
        this(responder, 0);
    }

    FakeExtension(Responder responder, int port) throws IOException {
        this.responder = responder;
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 0);
        server.createContext("/", this::handle);
        server.setExecutor(executor);
        server.start();
    }

    int port() {
        return server.getAddress().getPort();
    }

    Recorded last() {
        synchronized (requests) {
            return requests.get(requests.size() - 1);
        }
    }

    /** A builder of a client of this double with the test token, reading no real environment. */
    CacheClient.Builder client() {
        return Clients.env(String.valueOf(port()), null, Checks.TOKEN);
    }

    /** Reads the parameter, whose answer is "v-" + name, and checks how many requests that took (0: from the near cache). */
    void reads(CacheClient client, String name, int count) {
        int before = requests.size();
        assertEquals("v-" + name, client.getParameter(name));
        assertEquals(count, requests.size() - before, () -> "requests for " + name);
    }

    private void handle(HttpExchange exchange) throws IOException {
        try {
            exchange.getRequestBody().readAllBytes();
            Recorded recorded = new Recorded(exchange);
            requests.add(recorded);
            Reply reply = responder.reply(recorded, count.getAndIncrement());
            exchange.getResponseHeaders().set("Content-Type", reply.contentType);
            for (Map.Entry<String, String> header : reply.headers.entrySet()) {
                exchange.getResponseHeaders().set(header.getKey(), header.getValue());
            }
            exchange.sendResponseHeaders(reply.status, reply.body.length == 0 ? -1 : reply.body.length);
            if (reply.body.length > 0) {
                try (OutputStream out = exchange.getResponseBody()) {
                    out.write(reply.body);
                }
            }
        } finally {
            exchange.close();
        }
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}
