package dev.cacheextension.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * A fast test double for many requests: answers every GET on a kept-alive connection with "v-" + the name and
 * the Cache-Control its function gives for the name, head and body in one write; counts the requests.
 * (HttpServer takes ~40 ms a request here when Nagle meets a delayed ACK.)
 */
final class KeepAliveAnswers implements AutoCloseable {
    final AtomicInteger requests = new AtomicInteger();
    private final ServerSocket socket;
    private final Function<String, String> cacheControl;

    KeepAliveAnswers(Function<String, String> cacheControl) throws IOException {
        this.cacheControl = cacheControl;
        socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        FakeExtension.daemon(() -> {
            while (!socket.isClosed()) {
                try {
                    Socket connection = socket.accept();
                    FakeExtension.daemon(() -> serve(connection)).start();
                } catch (IOException e) {
                    // closed by close()
                }
            }
        }).start();
    }

    int port() {
        return socket.getLocalPort();
    }

    CacheClient.Builder client() {
        return CacheClient.builder().environment(Collections.emptyMap()).port(port()).token(Checks.TOKEN);
    }

    /** Reads the parameter and checks how many requests that took (0: from the near cache). */
    void reads(CacheClient client, String name, int count) {
        int before = requests.get();
        assertEquals("v-" + name, client.getParameter(name));
        assertEquals(count, requests.get() - before, () -> "requests for " + name);
    }

    private void serve(Socket connection) {
        try (Socket c = connection) {
            c.setTcpNoDelay(true);
            c.setSoTimeout(5000);
            InputStream in = c.getInputStream();
            OutputStream out = c.getOutputStream();
            while (true) {
                StringBuilder head = new StringBuilder();
                int b;
                while (!(head.length() >= 4 && head.substring(head.length() - 4).equals("\r\n\r\n")) && (b = in.read()) >= 0) {
                    head.append((char) b);
                }
                if (!head.toString().endsWith("\r\n\r\n")) {
                    return;
                }
                String target = head.substring(head.indexOf(" ") + 1, head.indexOf(" HTTP/"));
                String name = URLDecoder.decode(target.substring(target.indexOf("name=") + 5), StandardCharsets.UTF_8);
                requests.incrementAndGet();
                byte[] body = ("v-" + name).getBytes(StandardCharsets.UTF_8);
                String header = cacheControl.apply(name);
                byte[] answer = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        + (header == null ? "" : "Cache-Control: " + header + "\r\n") + "Content-Length: " + body.length
                        + "\r\n\r\n" + "v-" + name).getBytes(StandardCharsets.UTF_8);
                out.write(answer);
                out.flush();
            }
        } catch (IOException e) {
            // the client went away, or close()
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
