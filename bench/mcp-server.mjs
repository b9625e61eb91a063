// An MCP server as its author writes it with the official SDK v2 (the stateless 2026-07-28
// handler), protected by Writ's MCP middleware (the built `dist/mcp`), on HTTPS with mutual
// TLS under its own X.509-SVID. Started by run.mjs as a child process (with an IPC channel).
//
// Input (env): WRIT_BENCH_MCP = JSON { cert, key, ca, resource, issuer, jwksUri, tool, text, decisions? }
//   cert/key: the server's X.509-SVID; ca: Writ's trust bundle; tool: the one tool it serves
//   (a call needs `read`), answering `text`; decisions: Writ's AuthZEN evaluation URL, to ask
//   about every tools/call.
// Output (IPC to the parent): { port } once it listens on 127.0.0.1.
import { createServer } from 'node:https';
import express from 'express';
import { z } from 'zod';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { writProtection } from '../dist/mcp/index.js';

const config = JSON.parse(process.env.WRIT_BENCH_MCP ?? '{}');

/** A new McpServer per request (the SDK's stateless pattern) with one trivial tool. */
function mcpServer() {
  const server = new McpServer({ name: 'bench', version: '1.0.0' });
  server.registerTool(config.tool, { description: 'Answers a fixed text', inputSchema: z.object({}) }, async () => ({ content: [{ type: 'text', text: config.text }] }));
  return server;
}

const tls = { cert: config.cert, key: config.key, ca: config.ca };
const protect = writProtection({
  resource: config.resource,
  issuer: config.issuer,
  jwksUri: config.jwksUri,
  ca: config.ca,
  toolActions: { [config.tool]: 'read' }, // a call needs `read` granted (and, with decisions, permitted)
  ...(config.decisions && { decisions: { url: config.decisions, tls } }),
});
const node = toNodeHandler(createMcpHandler(() => mcpServer()));
const app = express();
app.post('/mcp', express.json(), protect, (req, res) => void node(req, res, req.body)); // express.json() drained the body: hand it over
const server = createServer({ ...tls, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 60_000 }, app);
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0)); // the bench is gone
