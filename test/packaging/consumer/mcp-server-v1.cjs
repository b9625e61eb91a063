// An MCP server as its author writes it with the official SDK 1.x, in a project where
// @writ/sdk, @writ/mcp, @modelcontextprotocol/sdk and express are installed (./common.cjs:
// its SVID from Writ, HTTPS, writProtection).
'use strict';
const express = require('express');
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js');
const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { grantedToolsOnly, writIdentityOf } = require('@writ/mcp');
const { run, serveMcp } = require('./common.cjs');

function mcp() {
  const s = new McpServer({ name: 'issues', version: '1.0.0' });
  s.registerTool('list_issues', { description: 'List open issues', inputSchema: {} }, async (_args, extra) => {
    const who = writIdentityOf(extra.authInfo); // 1.x: the identity rides on extra.authInfo
    return { content: [{ type: 'text', text: `1 open issue, for ${who.user} via ${who.connector}` }] };
  });
  s.registerTool('delete_repo', { description: 'Delete the repository', inputSchema: {} }, async () => ({ content: [{ type: 'text', text: 'deleted' }] }));
  return grantedToolsOnly(s);
}

run('mcp server', () =>
  serveMcp('/issues', (_resource, protect) => {
    const app = express();
    app.post('/issues', express.json(), protect, async (req, res) => {
      const s = mcp();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => void s.close());
      await s.connect(transport);
      await transport.handleRequest(req, res, req.body);
    });
    return app;
  }),
);
