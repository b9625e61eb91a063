// An MCP server in its own process that calls a SaaS for the user through Writ's token vault,
// as a connector author writes one with @writ/mcp and the official SDK v2. It is given only its
// own SVID (files), Writ's URL and bundle, and the SaaS's API URL: no SaaS credential of any kind.
// It prints its port once it listens; SIGUSR2 writes a heap snapshot (node --heapsnapshot-signal).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import express from 'express';
import { z } from 'zod';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { AccountLinkRequired, linkRequiredResult, writProtection, writVault } from '@writ/mcp';

const env = process.env;
const cert = readFileSync(env.SVID_CERT, 'utf8');
const key = readFileSync(env.SVID_KEY, 'utf8');
const ca = readFileSync(env.WRIT_BUNDLE, 'utf8');
const tls = { cert, key, ca };
const protect = writProtection({ resource: env.RESOURCE, issuer: env.WRIT_ISSUER, jwksUri: `${env.WRIT_API}/oauth2/jwks`, ca, introspect: { url: `${env.WRIT_API}/oauth2/introspect`, tls, cacheMs: 0 }, reporting: false });
const vault = writVault({ url: `${env.WRIT_API}/oauth2/token`, tls });
const node = toNodeHandler(
  createMcpHandler(() => {
    const server = new McpServer({ name: 'notes-connector', version: '1.0.0' });
    server.registerTool('post_note', { description: 'Post a note for the user', inputSchema: z.object({ text: z.string() }) }, async ({ text }, ctx) => {
      try {
        const notes = await vault.token(ctx, { provider: 'notes', scope: 'notes:write' });
        const posted = await fetch(`${env.SAAS_API}/notes`, { method: 'POST', headers: { authorization: `Bearer ${notes.accessToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
        return { content: [{ type: 'text', text: `posted (${posted.status})` }] };
      } catch (err) {
        if (err instanceof AccountLinkRequired) return linkRequiredResult(err);
        throw err;
      }
    });
    return server;
  }),
);
const app = express();
app.post('/mcp', express.json(), protect, (req, res) => void node(req, res, req.body));
const https = createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, app);
https.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: https.address().port })}\n`));
process.on('SIGTERM', () => https.close(() => process.exit(0)));
