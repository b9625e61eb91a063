// What the consumer scripts share, copied beside them into each consumer project: settings from
// the environment, and an MCP server's start (its SVID from Writ, HTTPS asking for client
// certificates, writProtection for its resource), as their authors would write it.
'use strict';
const { readFileSync } = require('node:fs');
const { X509Source, createHttpsServer, tlsServerOptions, authorizeAny } = require('@writ/sdk');

/** A required environment variable. */
function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

/** Runs `main`; a failure is one line on stderr and exit status 1. */
function run(what, main) {
  main().catch((err) => {
    process.stderr.write(`${what}: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  });
}

/**
 * Attests with JOIN_TOKEN, listens on HTTPS at 127.0.0.1 with the SVID (any SVID of the trust
 * domain may connect), and builds the request handler with `app(resource, protect, identity)`;
 * prints {"url", "spiffeId"} when it serves, and stops on SIGTERM.
 */
async function serveMcp(path, app) {
  const { writProtection } = require('@writ/mcp');
  const writ = env('WRIT_SERVER');
  const source = await X509Source.create({ server: writ, bundle: readFileSync(env('WRIT_CA')), attestation: { joinToken: env('JOIN_TOKEN') } });
  let handler = (_req, res) => res.writeHead(503).end();
  const server = createHttpsServer(tlsServerOptions(source, authorizeAny()), (req, res) => handler(req, res));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const resource = `https://127.0.0.1:${server.address().port}${path}`;
  const svid = source.getX509Svid();
  const bundle = source.getBundle().x509AuthoritiesPem;
  const protect = writProtection({
    resource,
    issuer: env('WRIT_ISSUER'),
    jwksUri: `${writ}/oauth2/jwks`,
    ca: bundle,
    introspect: { url: `${writ}/oauth2/introspect`, cacheMs: 0, tls: { cert: svid.certificatesPem, key: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }), ca: bundle } },
  });
  handler = app(resource, protect);
  process.stdout.write(JSON.stringify({ url: resource, spiffeId: svid.spiffeId }) + '\n');
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections?.();
    void source.close();
  });
}

module.exports = { env, run, serveMcp };
