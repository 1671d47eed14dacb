package dev.cacheextension.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A raw loopback server like an extension that closed a kept-alive connection while it was idle: it answers the
 * first request and keeps that connection open, then closes it as soon as the next request arrives on it, without
 * an answer; every later connection gets one answer (and is closed). Deterministic, unlike a server that closes
 * an idle connection on a timer: HttpClient drops a pooled connection it sees closed, so only a close that meets
 * the request shows the failure.
 */
final class KeepAliveServer implements AutoCloseable {
    final AtomicInteger requests = new AtomicInteger();
    final List<Integer> connections = Collections.synchronizedList(new ArrayList<>()); // per request, from 1
    private final ServerSocket socket;
    private final byte[] body;

    KeepAliveServer(String body) throws IOException {
        this.body = body.getBytes(StandardCharsets.UTF_8);
        socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        FakeExtension.daemon(this::serve).start();
    }

    int port() {
        return socket.getLocalPort();
    }

    private void serve() {
        int accepted = 0;
        while (!socket.isClosed()) {
            try (Socket connection = socket.accept()) {
                accepted++;
                connection.setSoTimeout(5000);
                InputStream in = connection.getInputStream();
                OutputStream out = connection.getOutputStream();
                boolean first = accepted == 1;
                while (RawServer.readHead(in)) {
                    requests.incrementAndGet();
                    connections.add(accepted);
                    if (first && connections.size() > 1) {
                        break; // the kept-alive connection, closed under the request that reused it
                    }
                    out.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + body.length
                            + (first ? "" : "\r\nConnection: close") + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                    out.write(body);
                    out.flush();
                    if (!first) {
                        break;
                    }
                }
            } catch (IOException e) {
                // closed by close(), or a client gone: keep serving until closed
            }
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
