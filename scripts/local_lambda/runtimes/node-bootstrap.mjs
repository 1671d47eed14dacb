// A minimal Node.js runtime for LOCAL RUNS ONLY: it stands in for Lambda's managed Node.js runtime
// (whose runtime interface client, npm's aws-lambda-ric, builds native code and is not usable here)
// under scripts/run-local's emulator. On Lambda, the managed runtime does this job; this file is never
// part of the layer nor of a function's package.
//
// It is the loop of a custom runtime, written from AWS's Runtime API reference:
//   Init:   load $LAMBDA_TASK_ROOT/<module>.{mjs,js,cjs} named by _HANDLER ("index.handler"), find the
//           exported function; a failure is posted to /runtime/init/error and the process exits 1.
//   Invoke: GET /runtime/invocation/next -> await handler(event, context) -> POST .../response,
//           or POST .../error with {errorType, errorMessage, trace} when the handler throws.
//
// Usage: node node-bootstrap.mjs   (with AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT set,
// and NODE_PATH=/opt/nodejs/node_modules as Lambda sets it)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const API = process.env.AWS_LAMBDA_RUNTIME_API;
const BASE = '/2018-06-01/runtime';
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || process.cwd();
const HANDLER = process.env._HANDLER || 'index.handler';

// One keep-alive connection to the Runtime API, as a runtime keeps it for its whole life. No socket
// timeout: invocation/next blocks until the next event, however long that takes.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const [HOST, PORT] = splitAddress(API);

function splitAddress(address) {
  if (!address) {
    process.stderr.write('AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(2);
  }
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

function call(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body, 'utf8');
    const request = http.request(
      {
        host: HOST,
        port: PORT,
        method,
        path: BASE + urlPath,
        agent,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers } : headers,
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(data);
  });
}

function errorDocument(err) {
  const error = err instanceof Error ? err : new Error(String(err));
  return {
    errorType: error.name || 'Error',
    errorMessage: error.message || '',
    trace: String(error.stack || '').split('\n'),
  };
}

async function loadHandler() {
  const dot = HANDLER.lastIndexOf('.');
  if (dot <= 0) throw Object.assign(new Error(`Bad handler ${HANDLER}: expected module.function`), { name: 'Runtime.MalformedHandlerName' });
  const modulePath = HANDLER.slice(0, dot);
  const functionName = HANDLER.slice(dot + 1);
  const file = ['.mjs', '.js', '.cjs'].map((ext) => path.resolve(TASK_ROOT, modulePath + ext)).find((f) => fs.existsSync(f));
  if (!file) throw Object.assign(new Error(`Cannot find module '${modulePath}' in ${TASK_ROOT}`), { name: 'Runtime.ImportModuleError' });
  // An error thrown by the function's own module code is reported as it is, as Lambda's runtime does.
  const module = await import(pathToFileURL(file).href);
  const handler = module[functionName] ?? module.default?.[functionName];
  if (typeof handler !== 'function') {
    throw Object.assign(new Error(`${modulePath}.${functionName} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  }
  return handler;
}

function makeContext(headers) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  return {
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

function runHandler(handler, event, context) {
  // A callback-style handler (event, context, callback) also works, as in Lambda's Node.js runtimes.
  if (handler.length >= 3) {
    return new Promise((resolve, reject) => {
      const result = handler(event, context, (err, value) => (err ? reject(err) : resolve(value)));
      if (result && typeof result.then === 'function') result.then(resolve, reject);
    });
  }
  return Promise.resolve().then(() => handler(event, context));
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (err) {
    const document = errorDocument(err);
    process.stderr.write(`INIT failed: ${document.errorType}: ${document.errorMessage}\n`);
    await call('POST', '/init/error', JSON.stringify(document), { 'Lambda-Runtime-Function-Error-Type': document.errorType }).catch(() => {});
    process.exit(1);
  }
  for (;;) {
    const next = await call('GET', '/invocation/next');
    if (next.status !== 200) throw new Error(`invocation/next answered ${next.status}`);
    const requestId = next.headers['lambda-runtime-aws-request-id'];
    if (next.headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = next.headers['lambda-runtime-trace-id'];
    let answer;
    try {
      const event = next.body ? JSON.parse(next.body) : {};
      const result = await runHandler(handler, event, makeContext(next.headers));
      answer = await call('POST', `/invocation/${encodeURIComponent(requestId)}/response`, JSON.stringify(result === undefined ? null : result));
    } catch (err) {
      const document = errorDocument(err);
      console.error(`Invoke Error ${document.errorType}: ${document.errorMessage}`);
      answer = await call('POST', `/invocation/${encodeURIComponent(requestId)}/error`, JSON.stringify(document), {
        'Lambda-Runtime-Function-Error-Type': 'Unhandled',
      });
    }
    if (answer.status !== 202) process.stderr.write(`the Runtime API refused the answer for ${requestId}: ${answer.status} ${answer.body}\n`);
  }
}

process.on('SIGTERM', () => process.exit(0));
main().catch((err) => {
  process.stderr.write(`runtime loop failed: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
