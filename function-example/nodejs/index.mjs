// Example function: reads the sample's parameter, secret and DynamoDB item through the cache extension.
//
// The client comes from the layer (/opt/nodejs/node_modules, on Lambda's NODE_PATH). An ES module
// `import` does not search NODE_PATH, so it is loaded with require through createRequire.
// Secrets are never logged or returned: only their length (UTF-8 bytes) and SHA-256.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { CacheClient } = require('cache-extension-client');

const PARAMETER = 'CacheExtensions_Parameter1';
const SECRET = 'secret_info';
const SECRET_REFERENCE = `/aws/reference/secretsmanager/${SECRET}`;
const ITEM = 'DynamoDbTable-pKey1-sKey1';

// Once per execution environment: its keep-alive connection is reused by every invoke.
const client = new CacheClient();

function fingerprint(value) {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
  return { length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export const handler = async (event) => {
  const [parameter, secretFromReference, secret, item] = await Promise.all([
    client.getParameter(PARAMETER),
    client.getParameter(SECRET_REFERENCE),
    client.getSecret(SECRET),
    client.getItem(ITEM),
  ]);
  return {
    parameter,
    secretFromReference: fingerprint(secretFromReference),
    secret: fingerprint(secret),
    item,
  };
};
