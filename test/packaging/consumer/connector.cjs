// A connector as its author writes it, in a project where only @writ/sdk is installed: attest
// with a join token, exchange the user's ID token for a task token, call an MCP server over
// mutual TLS with it, end the task. Prints one JSON line of what it saw.
'use strict';
const { readFileSync } = require('node:fs');
const { request } = require('node:https');
const { X509Source, TaskTokenClient, mtlsAgent, authorizeId } = require('@writ/sdk');
const { env, run } = require('./common.cjs');

async function main() {
  const source = await X509Source.create({
    server: env('WRIT_SERVER'),
    bundle: readFileSync(env('WRIT_CA')),
    attestation: { joinToken: env('JOIN_TOKEN') },
  });
  const tokens = new TaskTokenClient(source);
  const resource = env('RESOURCE');
  const agent = mtlsAgent(source, authorizeId(env('MCP_SERVER_ID')));
  let id = 0;
  const rpc = (token, method, params) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params });
      const req = request(resource, {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-06-18',
        },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          // A JSON answer, or a Server-Sent Events stream whose one message is the answer (MCP Streamable HTTP).
          const sse = /^text\/event-stream/.test(res.headers['content-type'] ?? '');
          const json = sse ? text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('') : text;
          resolve({ status: res.statusCode, challenge: res.headers['www-authenticate'], body: json ? JSON.parse(json) : undefined });
        });
      });
      req.on('error', reject);
      req.end(body);
    });

  const task = await tokens.exchange({ subjectToken: env('ID_TOKEN'), resource, tools: [{ name: 'list_issues', actions: ['read'] }] });
  const listed = await rpc(task.accessToken, 'tools/list', {});
  const called = await rpc(task.accessToken, 'tools/call', { name: 'list_issues', arguments: {} });
  const ungranted = await rpc(task.accessToken, 'tools/call', { name: 'delete_repo', arguments: {} });
  const ended = await tokens.endTask(task.taskId);
  const afterEnd = await rpc(task.accessToken, 'tools/call', { name: 'list_issues', arguments: {} });
  agent.destroy();
  await source.close();
  process.stdout.write(JSON.stringify({
    taskId: task.taskId,
    listed: listed.status === 200 ? listed.body.result.tools.map((t) => t.name) : listed,
    called: called.status === 200 ? called.body.result.content[0].text : called,
    ungranted: { status: ungranted.status, challenge: ungranted.challenge },
    ended: ended.revoked,
    afterEnd: { status: afterEnd.status, challenge: afterEnd.challenge },
  }) + '\n');
}

run('connector', main);
