package dev.cacheextension.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A raw loopback server that closes its first {@code closes} connections as soon as a request arrives, without
 * an answer (like an extension whose kept-alive connection went away), then answers normally.
 */
final class RawServer implements AutoCloseable {
    final AtomicInteger accepted = new AtomicInteger();
    private final ServerSocket socket;
    private final int closes;
    private final String contentType;
    private final byte[] body;

    RawServer(int closes) throws IOException {
        this(closes, "text/plain; charset=utf-8", "after-reset");
    }

    RawServer(int closes, String contentType, String body) throws IOException {
        this.closes = closes;
        this.contentType = contentType;
        this.body = body.getBytes(StandardCharsets.UTF_8);
        socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        FakeExtension.daemon(this::serve).start();
    }

    int port() {
        return socket.getLocalPort();
    }

    private void serve() {
        while (!socket.isClosed()) {
            try (Socket connection = socket.accept()) {
                connection.setSoTimeout(5000);
                InputStream in = connection.getInputStream();
                readHead(in);
                if (accepted.incrementAndGet() <= closes) {
                    continue; // closed without a byte of answer
                }
                OutputStream out = connection.getOutputStream();
                out.write(("HTTP/1.1 200 OK\r\nContent-Type: " + contentType + "\r\nContent-Length: "
                        + body.length + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                out.write(body);
                out.flush();
            } catch (IOException e) {
                // closed by close(), or a client gone: keep serving until closed
            }
        }
    }

    /** Reads up to the end of a request head; false when the connection ended first. */
    static boolean readHead(InputStream in) throws IOException {
        int matched = 0;
        byte[] end = {'\r', '\n', '\r', '\n'};
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                return false;
            }
            matched = b == end[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
        }
        return true;
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
