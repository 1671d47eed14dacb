import dev.cacheextension.client.CacheClient;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * Keep-alive connections across a freeze of the extension: COUNT CacheClient instances (each with its own
 * HttpClient, so its own pooled connection) read once, print "round N failed", wait for a line on stdin,
 * then read again on the same connections.
 */
public class FreezeProbe {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        String name = args[1];
        int count = Integer.parseInt(args[2]);
        CacheClient[] clients = new CacheClient[count];
        for (int i = 0; i < count; i++) {
            clients[i] = CacheClient.builder().port(port).timeout(Duration.ofSeconds(5)).nearCache(false).build();
        }
        System.out.println("round " + round(clients, name) + " failed");
        System.out.flush();
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        System.out.println("round " + round(clients, name) + " failed");
        System.out.flush();
        System.exit(0);
    }

    private static int round(CacheClient[] clients, String name) {
        int failed = 0;
        for (CacheClient client : clients) {
            try {
                client.getParameter(name);
            } catch (RuntimeException e) {
                failed++;
                System.out.println("error " + e.getClass().getSimpleName());
            }
        }
        return failed;
    }
}
