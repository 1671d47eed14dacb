// Cache-hit latency through the Node.js client: N sequential reads on one keep-alive connection.
// Usage: node client_bench.mjs NAME COUNT   (CACHE_EXTENSION_PORT, AWS_SESSION_TOKEN, NODE_PATH from the environment)
import { createRequire } from 'node:module';

const { CacheClient } = createRequire(import.meta.url)('cache-extension-client');
const [name, count] = [process.argv[2], Number(process.argv[3] || 2000)];
const client = new CacheClient();
for (let i = 0; i < 200; i++) await client.getParameter(name); // warm-up: JIT and connection
const samples = [];
for (let i = 0; i < count; i++) {
  const start = process.hrtime.bigint();
  await client.getParameter(name);
  samples.push(Number(process.hrtime.bigint() - start) / 1e6);
}
client.close();
console.log(JSON.stringify(samples));
