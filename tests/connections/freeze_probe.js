// Keep-alive connections across a freeze of the extension: COUNT raw http.get calls, each on its own
// keep-alive agent (the README's plain-HTTP example), and COUNT CacheClient instances. One read each, then
// "ready" on stdout; after a line on stdin, one more read each on the same connections.
// Prints one JSON line per round: {"raw": [error or null, ...], "client": [...], "reused": n}.
'use strict';
const http = require('http');
const readline = require('readline');
const { CacheClient } = require('cache-extension-client');

const [port, name, count] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4])];
const token = process.env.AWS_SESSION_TOKEN;

function rawGet(agent) {
  return new Promise((resolve) => {
    const req = http.get({
      host: '127.0.0.1', port, agent, path: `/parameters?name=${encodeURIComponent(name)}`,
      headers: { 'X-Aws-Parameters-Secrets-Token': token },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ error: res.statusCode === 200 ? null : `status ${res.statusCode}`, reused: req.reusedSocket }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.code || err.message, reused: req.reusedSocket }));
  });
}

async function round(agents, clients) {
  const raw = [];
  let reused = 0;
  for (const agent of agents) {
    const result = await rawGet(agent);
    raw.push(result.error);
    reused += result.reused ? 1 : 0;
  }
  const client = [];
  for (const c of clients) {
    try {
      await c.getParameter(name);
      client.push(null);
    } catch (err) {
      client.push(err.code || err.name);
    }
  }
  return { raw, client, reused };
}

async function main() {
  const agents = Array.from({ length: count }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const clients = Array.from({ length: count }, () => new CacheClient({ port, timeoutMs: 5000, nearCache: false }));
  console.log(JSON.stringify(await round(agents, clients)));
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  console.log(JSON.stringify(await round(agents, clients)));
  lines.close();
  for (const agent of agents) agent.destroy();
  for (const c of clients) c.close();
}

main().catch((err) => { console.error(err); process.exit(1); });
