// Read latency through the Node.js client: N sequential reads of one name, as JSON milliseconds.
// Usage: node client_bench.mjs NAME COUNT [http|near]   (CACHE_EXTENSION_PORT, AWS_SESSION_TOKEN, NODE_PATH from
// the environment). http (the default): the near cache off, every read a GET on one keep-alive connection
// (scripts/bench also sets CACHE_EXTENSION_CLIENT_CACHE=off, for a client without the option). near: the
// client's default, the near cache on: after the first read, repeated reads come from process memory.
import { createRequire } from 'node:module';

const { CacheClient } = createRequire(import.meta.url)('cache-extension-client');
const [name, count, mode] = [process.argv[2], Number(process.argv[3] || 2000), process.argv[4] || 'http'];
const client = mode === 'near' ? new CacheClient() : new CacheClient({ nearCache: false });
for (let i = 0; i < 200; i++) await client.getParameter(name); // warm-up: JIT and connection
const samples = new Array(count);
for (let i = 0; i < count; i++) {
  const start = process.hrtime.bigint();
  await client.getParameter(name);
  samples[i] = Number(process.hrtime.bigint() - start) / 1e6;
}
client.close();
console.log(JSON.stringify(samples));
