// The shared client contract (tests/contract/cases.json) run against a real extension.
//
//   CONTRACT_CASES=.../cases.json CACHE_EXTENSION_PORT=... AWS_SESSION_TOKEN=... CONTRACT_DOWN_PORT=... CONTRACT_TRAP_PORT=... \
//   NODE_PATH=<layer>/nodejs/node_modules node --test tests/clients/nodejs/
//
// The client is loaded by its bare name so that NODE_PATH decides which copy (the built layer's) is tested.
// With CONTRACT_STARTUP=1 only the cases marked "startup" run, otherwise only the others. A case with "env"
// runs in a child process of this file started with that environment (CONTRACT_ONLY=its id), so that the
// client takes its token and port from its real process environment (CACHE_EXTENSION_CLIENT_CACHE included). Every case
// gets a client of its own, closed after it, so each starts with an empty near cache. "expect.requests" is
// checked against the extension's GET /stats, read by this process (never by a child) before and after the case.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CASE_TIMEOUT_MS = 10_000;
const CHILD_TIMEOUT_MS = 10_000; // a child runs one case: its own start plus at most one case's time
const STATS_TIMEOUT_MS = 2000;
// What GET /stats counts as a read the extension served, per source.
const SERVED_COUNTERS = ['Hits', 'Misses', 'StaleServed'];
// The clients' token chain, first non-empty one wins (cases.json's "about").
const TOKEN_VARIABLES = ['CACHE_EXTENSION_TOKEN', 'AWS_TOKEN', 'AWS_SESSION_TOKEN', 'AWS_CONTAINER_AUTHORIZATION_TOKEN'];
// What a case's "env" decides for the client in its child: removed from this process's environment, then set as
// the case says. Any other variable the case names (CACHE_EXTENSION_PORT) replaces this process's value.
const CLIENT_VARIABLES = [...TOKEN_VARIABLES, 'PARAMETERS_SECRETS_EXTENSION_HTTP_PORT', 'CACHE_EXTENSION_CLIENT_CACHE'];
const casesPath = process.env.CONTRACT_CASES;
const only = process.env.CONTRACT_ONLY; // set in a child: the id of the one case it runs

if (!casesPath) {
  test('client contract', { skip: 'CONTRACT_CASES is not set (it names tests/contract/cases.json; the pytest suite sets it)' }, () => {});
} else {
  const require = createRequire(import.meta.url);
  let client;
  try {
    client = require('cache-extension-client');
  } catch (err) {
    throw new Error(`cannot load 'cache-extension-client' by its bare name (set NODE_PATH to the layer's nodejs/node_modules): ${err.message}`);
  }
  const { CacheClient, CacheExtensionError, NotFoundError, ExtensionUnavailableError, UpstreamError } = client;
  const ERROR_CLASSES = { NotFound: NotFoundError, Unavailable: ExtensionUnavailableError, Upstream: UpstreamError };

  const table = JSON.parse(readFileSync(casesPath, 'utf8'));
  const startup = process.env.CONTRACT_STARTUP === '1';
  const cases = only === undefined
    ? table.cases.filter((c) => Boolean(c.startup) === startup)
    : table.cases.filter((c) => c.id === only);
  if (only !== undefined && cases.length !== 1) throw new Error(`CONTRACT_ONLY names ${cases.length} cases, not one`);

  // Text that must never show up in an error message: every expected value of the table.
  const secrets = new Set();
  for (const c of table.cases) {
    if (typeof c.expect.value === 'string') secrets.add(c.expect.value);
    if (c.expect.json !== undefined) secrets.add(JSON.stringify(c.expect.json));
    if (typeof c.expect.base64 === 'string') secrets.add(c.expect.base64);
  }
  for (const text of secrets) if (text.length < 6) secrets.delete(text); // "true", "5": in any sentence

  /** A new client for one case (never shared: every case starts with an empty near cache). */
  const clientFor = (options) => {
    const mapped = { ...options };
    for (const [key, value] of Object.entries(mapped)) {
      if (value === '$DOWN_PORT') {
        assert.ok(process.env.CONTRACT_DOWN_PORT, 'CONTRACT_DOWN_PORT is not set');
        mapped[key] = Number(process.env.CONTRACT_DOWN_PORT);
      }
    }
    return new CacheClient(mapped);
  };

  /**
   * The number of reads the extension has served so far: the sum over every source of Hits, Misses and
   * StaleServed in its GET /stats, asked with its token (this runner's own AWS_SESSION_TOKEN).
   */
  const servedReads = () => new Promise((resolve, reject) => {
    const token = process.env.AWS_SESSION_TOKEN;
    if (!token) return reject(new Error('AWS_SESSION_TOKEN (the extension\'s token) is not set: GET /stats needs it'));
    const req = http.get({
      host: '127.0.0.1', port: Number(process.env.CACHE_EXTENSION_PORT), path: '/stats', agent: false,
      headers: { 'X-Aws-Parameters-Secrets-Token': token }, timeout: STATS_TIMEOUT_MS,
    }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET /stats answered ${res.statusCode}`));
        try {
          const { cache } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          let total = 0;
          for (const counters of Object.values(cache ?? {})) {
            for (const name of SERVED_COUNTERS) total += counters[name] ?? 0;
          }
          return resolve(total);
        } catch (err) {
          return reject(new Error(`GET /stats: not the JSON expected (${err.message})`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET /stats: no answer within ${STATS_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });

  /**
   * Runs `body` (the whole case: its client made, its calls, its checks) and, when the case expects a number of
   * requests, checks it against /stats read right before and right after (success or failure). A failure of the
   * case itself is reported first.
   */
  const countingRequests = async (expected, body) => {
    if (expected === undefined) return body();
    const before = await servedReads();
    let failure;
    try {
      await body();
    } catch (err) {
      failure = err;
    }
    const served = (await servedReads()) - before;
    if (failure) throw failure;
    assert.equal(served, expected, `the extension served ${served} reads during the case, expected ${expected}`);
    return undefined;
  };

  const call = (c, cacheClient) => {
    const options = c.transform || c.key ? { transform: c.transform, key: c.key } : undefined;
    switch (c.call) {
      case 'parameter': return cacheClient.getParameter(c.name, options);
      case 'secret': return cacheClient.getSecret(c.name, options);
      case 'item': return cacheClient.getItem(c.name);
      case 'refresh': return cacheClient.refresh(c.name, c.source ? { source: c.source } : undefined);
      case 'refreshAll': return cacheClient.refreshAll();
      default: throw new Error(`case ${JSON.stringify(c.id)}: unknown call ${JSON.stringify(c.call)}`);
    }
  };

  /**
   * The case's calls: its `steps` in order (a call, or {pauseMs}), else its call `repeat` times (default once)
   * in a row; a rejection ends them. Resolves the last call's result.
   */
  const callRepeated = async (c, cacheClient) => {
    let result;
    if (c.steps !== undefined) {
      assert.ok(Array.isArray(c.steps) && c.steps.length > 0, `case ${JSON.stringify(c.id)}: steps must be a non-empty list`);
      assert.ok(c.call === undefined && c.repeat === undefined, `case ${JSON.stringify(c.id)}: steps come instead of call and repeat`);
      for (const step of c.steps) {
        if (step.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, step.pauseMs));
        else result = await call({ id: c.id, ...step }, cacheClient);
      }
      return result;
    }
    for (let i = 0; i < (c.repeat ?? 1); i += 1) result = await call(c, cacheClient);
    return result;
  };

  /** The "exact" expectation compares decimal values as "[-]digits" and the exponent of the last digit, with no
   * leading or trailing zeros ("0" for zero), never through a JS number. */
  const decimalValue = (text) => {
    const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
    assert.ok(match, `${text} is not a decimal number`);
    const [, sign, whole, fraction = '', exponent = '0'] = match;
    const digits = `${whole}${fraction}`.replace(/^0+/, '');
    if (digits === '' || /^0+$/.test(digits)) return '0';
    const trailing = digits.length - digits.replace(/0+$/, '').length;
    return `${sign}${digits.slice(0, digits.length - trailing)}e${BigInt(exponent) - BigInt(fraction.length) + BigInt(trailing)}`;
  };

  /** The "includes" expectation: objects may have more members, arrays more elements, in any order. */
  const includes = (value, expected) => {
    if (Array.isArray(expected)) {
      return Array.isArray(value) && expected.every((want) => value.some((got) => includes(got, want)));
    }
    if (expected !== null && typeof expected === 'object') {
      return value !== null && typeof value === 'object' && !Array.isArray(value)
        && Object.entries(expected).every(([key, want]) => key in value && includes(value[key], want));
    }
    return value === expected;
  };

  /**
   * The case's "env" with "$TOKEN" (the extension's token), "$PORT" (its port) and "$DOWN_PORT" replaced: the
   * variables the client under test sees.
   */
  const caseEnvironment = (c) => {
    assert.equal(c.client?.token, undefined, 'a case with env gives no token option');
    const stands = {
      $TOKEN: ['AWS_SESSION_TOKEN', 'the extension\'s token'],
      $PORT: ['CACHE_EXTENSION_PORT', 'the extension\'s port'],
      $DOWN_PORT: ['CONTRACT_DOWN_PORT', 'a port nothing listens on'],
      $TRAP_PORT: ['CONTRACT_TRAP_PORT', 'a port that counts connections'],
      $VALUES_FILE: ['CONTRACT_VALUES_FILE', 'the file holding the case\'s valuesFile'],
    };
    return Object.fromEntries(Object.entries(c.env).map(([name, value]) => {
      if (!Object.hasOwn(stands, value)) return [name, value];
      const [variable, what] = stands[value];
      assert.ok(process.env[variable], `${variable} (${what}, "${value}") is not set`);
      return [name, process.env[variable]];
    }));
  };

  /** Runs a case with "env" in a child process started with that environment; the child checks the case. */
  const runInChild = (c) => {
    if (c.valuesFile === undefined) return runInChildWith(c);
    // The case's offline values in a file of their own, named to the child as "$VALUES_FILE" stands for.
    const dir = mkdtempSync(join(tmpdir(), 'contract-values-'));
    process.env.CONTRACT_VALUES_FILE = join(dir, 'values.json');
    try {
      writeFileSync(process.env.CONTRACT_VALUES_FILE, JSON.stringify(c.valuesFile));
      return runInChildWith(c);
    } finally {
      delete process.env.CONTRACT_VALUES_FILE;
      rmSync(dir, { recursive: true, force: true });
    }
  };

  const runInChildWith = (c) => {
    const variables = caseEnvironment(c);
    const env = { ...process.env };
    for (const name of CLIENT_VARIABLES) delete env[name];
    delete env.NODE_TEST_CONTEXT; // set by `node --test`: the child must report as a program of its own
    Object.assign(env, variables, { CONTRACT_ONLY: c.id });
    const child = spawnSync(process.execPath, ['--test-reporter=tap', fileURLToPath(import.meta.url)],
      { env, encoding: 'utf8', timeout: CHILD_TIMEOUT_MS, killSignal: 'SIGKILL' });
    let output = `${child.stdout ?? ''}${child.stderr ?? ''}`;
    const tokens = TOKEN_VARIABLES.map((name) => variables[name]);
    for (const text of [process.env.AWS_SESSION_TOKEN, ...tokens].filter(Boolean)) {
      output = output.split(text).join('<token>'); // whatever the child says, no token in this report
    }
    assert.ok(!child.error, `the child process failed to run: ${child.error?.code ?? child.error}\n${output}`);
    assert.equal(child.status, 0, `the case failed in its child process (status ${child.status}, signal ${child.signal}):\n${output}`);
    assert.match(output, /^# pass 1$/m, `the child process did not pass exactly one case:\n${output}`);
  };

  /** In the child: the environment the parent gave it is the case's, token and port variables included. */
  const checkChildEnvironment = (c) => {
    for (const name of new Set([...CLIENT_VARIABLES, ...Object.keys(c.env)])) {
      const want = c.env[name];
      const got = process.env[name];
      if (want === undefined) assert.equal(got, undefined, `${name} is set, the case does not name it`);
      else if (want === '$DOWN_PORT') assert.equal(got, process.env.CONTRACT_DOWN_PORT, `${name} is not CONTRACT_DOWN_PORT`);
      else if (want === '$TRAP_PORT') assert.equal(got, process.env.CONTRACT_TRAP_PORT, `${name} is not CONTRACT_TRAP_PORT`);
      else if (want === '$VALUES_FILE') assert.equal(got, process.env.CONTRACT_VALUES_FILE, `${name} is not CONTRACT_VALUES_FILE`);
      else if (want === '$TOKEN' || want === '$PORT') assert.ok(got, `${name} is not the extension's ${want.slice(1).toLowerCase()}`);
      else assert.equal(got, want, `${name} is not the case's value`);
    }
  };

  if (cases.length === 0) {
    test('client contract', { skip: `no case in ${casesPath} with startup=${startup}` }, () => {});
  }

  for (const c of cases) {
    if (c.env !== undefined && only === undefined) {
      // The child makes the client and runs the case; this process counts what the extension served meanwhile.
      test(c.id, { timeout: CASE_TIMEOUT_MS + CHILD_TIMEOUT_MS }, () => countingRequests(c.expect.requests, () => runInChild(c)));
      continue;
    }
    test(c.id, { timeout: CASE_TIMEOUT_MS }, async () => {
      if (c.env !== undefined) checkChildEnvironment(c);
      // In a child the parent counts the requests: only it has the extension's token to ask /stats with.
      await countingRequests(only === undefined ? c.expect.requests : undefined, () => check(c));
    });
  }

  /**
   * Runs the case on a client of its own, closed after it, and checks what it expects (all but requests). Making
   * the client is part of the case: an error from the constructor is the case's error.
   */
  async function check(c) {
    const { expect } = c;
    let cacheClient;
    const run = async () => {
      cacheClient = clientFor(c.client);
      return callRepeated(c, cacheClient);
    };
    try {
      if (expect.error === undefined) {
        const result = await run();
        if ('value' in expect) {
          assert.equal(typeof result, 'string', `expected a string, got ${typeof result}`);
          assert.equal(result, expect.value);
        } else if ('json' in expect) {
          assert.deepStrictEqual(result, expect.json);
        } else if ('includes' in expect) {
          assert.ok(includes(result, expect.includes), `${JSON.stringify(result)} does not include ${JSON.stringify(expect.includes)}`);
        } else if ('exact' in expect) {
          for (const [path, text] of Object.entries(expect.exact)) {
            const got = path.split('.').reduce((value, step) => value?.[step], result);
            assert.ok(typeof got === 'number' || typeof got === 'string', `${path}: a ${typeof got}, not a number or a string`);
            assert.equal(decimalValue(String(got)), decimalValue(text), `${path}: ${got} is not ${text}`);
          }
        } else if ('base64' in expect) {
          assert.ok(Buffer.isBuffer(result), `expected a Buffer, got ${typeof result}`);
          assert.ok(result.equals(Buffer.from(expect.base64, 'base64')), 'the bytes differ from the expected ones');
        } else {
          assert.fail(`case ${JSON.stringify(c.id)}: unknown expect ${JSON.stringify(Object.keys(expect))}`);
        }
        return;
      }
      let error;
      try {
        await run();
      } catch (err) {
        error = err;
      }
      assert.ok(error, `expected a rejection with ${expect.error}, got a value`);
      assert.ok(error instanceof CacheExtensionError, `expected a CacheExtensionError, got ${error.name}: ${error.message}`);
      if (expect.error === 'Error') {
        for (const cls of Object.values(ERROR_CLASSES)) {
          assert.ok(!(error instanceof cls), `expected a plain CacheExtensionError, got ${error.name}`);
        }
      } else {
        const cls = ERROR_CLASSES[expect.error];
        assert.ok(cls, `case ${JSON.stringify(c.id)}: unknown error kind ${expect.error}`);
        assert.ok(error instanceof cls, `expected ${cls.name}, got ${error.name}: ${error.message}`);
        assert.equal(error.name, cls.name);
      }
      // status 0: no HTTP answer, which this client reports as status undefined (cases.json's "about")
      if (expect.status !== undefined) assert.equal(error.status, expect.status === 0 ? undefined : expect.status, error.message);
      if (expect.code !== undefined) assert.equal(error.code, expect.code, error.message);
      if (expect.retryAfterAtLeast !== undefined) {
        assert.ok(typeof error.retryAfter === 'number' && error.retryAfter >= expect.retryAfterAtLeast,
          `retryAfter ${error.retryAfter}, expected at least ${expect.retryAfterAtLeast}`);
      }
      const tokens = [c.client?.token, ...TOKEN_VARIABLES.map((name) => process.env[name])].filter(Boolean);
      const envValues = Object.values(c.env ?? {}).filter(Boolean);
      for (const text of [...tokens, ...envValues, ...secrets]) {
        assert.ok(!error.message.includes(text), 'the error message contains the token, a value or a variable of the case\'s env');
      }
      for (const text of expect.messageIncludes ?? []) assert.ok(error.message.includes(text), error.message);
      for (const text of expect.messageExcludes ?? []) assert.ok(!error.message.includes(text), `the error message shows ${text}`);
    } finally {
      cacheClient?.close();
    }
  }
}
