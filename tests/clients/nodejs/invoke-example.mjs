// Invoke an example handler once, outside Lambda: node invoke-example.mjs path/to/index.mjs
// Prints JSON.stringify(result) on stdout and exits 0; on failure prints the error's name and message
// on stderr and exits 1 (2 for a usage error). The client is found through NODE_PATH, as on Lambda.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const BOUND_MS = 30_000;

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node invoke-example.mjs <handler module, e.g. function-example/nodejs/index.mjs>\n');
  process.exit(2);
}

// A bound on the whole invoke; unref'd so that it never delays a normal exit.
setTimeout(() => {
  process.stderr.write(`Timeout: the handler did not finish within ${BOUND_MS} ms\n`);
  process.exit(1);
}, BOUND_MS).unref();

try {
  const module = await import(pathToFileURL(path.resolve(file)).href);
  if (typeof module.handler !== 'function') throw new TypeError(`${file} does not export a function named handler`);
  const result = await module.handler({});
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  const name = err && err.name ? err.name : 'Error';
  const message = err && err.message ? err.message : String(err);
  process.stderr.write(`${name}: ${message}\n`);
  process.exit(1);
}
