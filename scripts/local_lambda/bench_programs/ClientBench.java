import dev.cacheextension.client.CacheClient;

/** Cache-hit latency through the Java client: N sequential reads (after a JIT warm-up), as JSON milliseconds. */
public class ClientBench {
    public static void main(String[] args) {
        String name = args[0];
        int count = args.length > 1 ? Integer.parseInt(args[1]) : 2000;
        CacheClient client = new CacheClient();
        for (int i = 0; i < 2000; i++) {
            client.getParameter(name);
        }
        StringBuilder out = new StringBuilder("[");
        for (int i = 0; i < count; i++) {
            long start = System.nanoTime();
            client.getParameter(name);
            out.append(i == 0 ? "" : ",").append((System.nanoTime() - start) / 1e6);
        }
        System.out.println(out.append("]"));
    }
}
