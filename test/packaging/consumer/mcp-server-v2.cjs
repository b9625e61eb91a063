// An MCP server as its author writes it with the official SDK v2 (the stateless 2026-07-28
// handler), in a project where @writ/sdk, @writ/mcp, @modelcontextprotocol/server and /node,
// zod and express are installed, and SDK 1.x is not (./common.cjs: its SVID from Writ, HTTPS,
// writProtection).
'use strict';
const express = require('express');
const { z } = require('zod');
const { McpServer, createMcpHandler } = require('@modelcontextprotocol/server');
const { toNodeHandler } = require('@modelcontextprotocol/node');
const { grantedToolsOnly, writIdentityOf } = require('@writ/mcp');
const { run, serveMcp } = require('./common.cjs');

function mcp() {
  const s = new McpServer({ name: 'issues', version: '2.0.0' });
  s.registerTool('list_issues', { description: 'List open issues', inputSchema: z.object({}) }, async (_args, ctx) => {
    const who = writIdentityOf(ctx); // v2: the identity rides on ctx.http.authInfo
    return { content: [{ type: 'text', text: `1 open issue, for ${who.user} via ${who.connector}` }] };
  });
  s.registerTool('delete_repo', { description: 'Delete the repository', inputSchema: z.object({}) }, async () => ({ content: [{ type: 'text', text: 'deleted' }] }));
  return grantedToolsOnly(s);
}

run('mcp server', () =>
  serveMcp('/issues', (_resource, protect) => {
    const node = toNodeHandler(createMcpHandler(() => mcp()));
    const app = express();
    // express.json() drained the body: hand it to the SDK's handler.
    app.post('/issues', express.json(), protect, (req, res) => void node(req, res, req.body));
    return app;
  }),
);
