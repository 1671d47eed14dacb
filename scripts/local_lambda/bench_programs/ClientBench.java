import dev.cacheextension.client.CacheClient;

import java.lang.reflect.Method;

/**
 * Read latency through the Java client: N sequential reads of one name (after a JIT warm-up), as JSON
 * milliseconds. Usage: ClientBench NAME COUNT [http|near]. http (the default): the near cache off
 * ({@code CacheClient.builder().nearCache(false)}; scripts/bench also sets CACHE_EXTENSION_CLIENT_CACHE=off, for a
 * client without the option), every read a GET. near: the client's default, the near cache on.
 */
public class ClientBench {
    public static void main(String[] args) throws Exception {
        String name = args[0];
        int count = args.length > 1 ? Integer.parseInt(args[1]) : 2000;
        boolean near = args.length > 2 && args[2].equals("near");
        CacheClient client = near ? new CacheClient() : withoutNearCache();
        for (int i = 0; i < 2000; i++) {
            client.getParameter(name);
        }
        long[] samples = new long[count];
        for (int i = 0; i < count; i++) {
            long start = System.nanoTime();
            client.getParameter(name);
            samples[i] = System.nanoTime() - start;
        }
        StringBuilder out = new StringBuilder(count * 10).append('[');
        for (int i = 0; i < count; i++) {
            out.append(i == 0 ? "" : ",").append(samples[i] / 1e6);
        }
        System.out.println(out.append(']'));
    }

    /** builder().nearCache(false).build() by reflection, so that this compiles against a client without it. */
    private static CacheClient withoutNearCache() throws Exception {
        Object builder = CacheClient.class.getMethod("builder").invoke(null);
        Method nearCache;
        try {
            nearCache = builder.getClass().getMethod("nearCache", boolean.class);
        } catch (NoSuchMethodException e) {
            return new CacheClient(); // CACHE_EXTENSION_CLIENT_CACHE=off from the environment
        }
        nearCache.invoke(builder, false);
        return (CacheClient) builder.getClass().getMethod("build").invoke(builder);
    }
}
