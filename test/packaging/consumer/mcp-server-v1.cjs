// An MCP server as its author writes it with the official SDK 1.x, in a project where
// @writ/sdk, @writ/mcp, @modelcontextprotocol/sdk and express are installed: its own SVID from
// Writ, HTTPS that asks for client certificates, every request through writProtection.
// Prints one JSON line {"url": …} when it listens; stops on SIGTERM.
'use strict';
const { readFileSync } = require('node:fs');
const express = require('express');
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js');
const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { X509Source, createHttpsServer, tlsServerOptions, authorizeAny } = require('@writ/sdk');
const { writProtection, grantedToolsOnly, protectedResourceMetadataHandler, writIdentityOf } = require('@writ/mcp');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

async function main() {
  const writ = env('WRIT_SERVER');
  const source = await X509Source.create({ server: writ, bundle: readFileSync(env('WRIT_CA')), attestation: { joinToken: env('JOIN_TOKEN') } });
  let app = (_req, res) => res.writeHead(503).end();
  const server = createHttpsServer(tlsServerOptions(source, authorizeAny()), (req, res) => app(req, res));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const resource = `https://127.0.0.1:${server.address().port}/issues`;

  const svid = source.getX509Svid();
  const bundle = source.getBundle().x509AuthoritiesPem;
  const protect = writProtection({
    resource,
    issuer: env('WRIT_ISSUER'),
    jwksUri: `${writ}/oauth2/jwks`,
    ca: bundle,
    introspect: {
      url: `${writ}/oauth2/introspect`,
      cacheMs: 0,
      tls: { cert: svid.certificatesPem, key: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }), ca: bundle },
    },
  });
  const mcp = () => {
    const s = new McpServer({ name: 'issues', version: '1.0.0' });
    s.registerTool('list_issues', { description: 'List open issues', inputSchema: {} }, async (_args, extra) => {
      const who = writIdentityOf(extra.authInfo);
      return { content: [{ type: 'text', text: `1 open issue, for ${who.user} via ${who.connector}` }] };
    });
    s.registerTool('delete_repo', { description: 'Delete the repository', inputSchema: {} }, async () => ({ content: [{ type: 'text', text: 'deleted' }] }));
    return grantedToolsOnly(s);
  };
  const e = express();
  e.use(protectedResourceMetadataHandler({ resource, issuer: env('WRIT_ISSUER') }));
  e.post('/issues', express.json(), protect, async (req, res) => {
    const s = mcp();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void s.close());
    await s.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  app = e;
  process.stdout.write(JSON.stringify({ url: resource, spiffeId: svid.spiffeId }) + '\n');
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections?.();
    void source.close();
  });
}

main().catch((err) => {
  process.stderr.write(`mcp server: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
