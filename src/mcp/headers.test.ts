import fc from 'fast-check';
import type { IncomingHttpHeaders } from 'node:http';
import { checkMcpHeaders, decodeMcpHeaderValue, HEADER_MISMATCH, headerMismatchBody, headersRequired } from './headers';

const MODERN = '2026-07-28';
const callBody = (name: unknown, id: number | string = 7) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });
const b64 = (s: string) => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;

describe('MCP 2026-07-28 standard headers against the body (SEP-2243)', () => {
  it('passes legacy requests without the headers, and agreeing headers', () => {
    expect(checkMcpHeaders({}, callBody('search'))).toBeUndefined();
    expect(checkMcpHeaders({ 'mcp-protocol-version': '2025-11-25' }, callBody('search'))).toBeUndefined();
    expect(checkMcpHeaders({ 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'search' }, callBody('search'))).toBeUndefined();
    expect(checkMcpHeaders({ 'mcp-method': 'tools/list' }, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).toBeUndefined();
    expect(checkMcpHeaders({ 'mcp-method': 'resources/read', 'mcp-name': 'file:///a' }, { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///a' } })).toBeUndefined();
  });

  it('refuses an Mcp-Method that names another method, with the request id and both values', () => {
    const out = checkMcpHeaders({ 'mcp-method': 'tools/call' }, { jsonrpc: '2.0', id: 9, method: 'tools/list' });
    expect(out).toMatchObject({ id: 9, mismatch: { header: 'tools/call', body: 'tools/list' } });
    expect(headerMismatchBody(out!)).toEqual({ jsonrpc: '2.0', id: 9, error: { code: HEADER_MISMATCH, message: expect.stringContaining('tools/list'), data: { mismatch: { header: 'tools/call', body: 'tools/list' } } } });
    expect(HEADER_MISMATCH).toBe(-32020);
  });

  it('refuses an Mcp-Name that names another tool, prompt or resource', () => {
    expect(checkMcpHeaders({ 'mcp-method': 'tools/call', 'mcp-name': 'search' }, callBody('delete_repo'))).toMatchObject({ mismatch: { header: 'search', body: 'delete_repo' } });
    expect(checkMcpHeaders({ 'mcp-method': 'prompts/get', 'mcp-name': 'a' }, { jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'b' } })).toMatchObject({ mismatch: { header: 'a', body: 'b' } });
    expect(checkMcpHeaders({ 'mcp-method': 'resources/read', 'mcp-name': 'file:///a' }, { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///b' } })).toMatchObject({ mismatch: { body: 'file:///b' } });
  });

  it('decodes the =?base64?…?= form of non-ASCII names, and refuses one that does not decode', () => {
    expect(decodeMcpHeaderValue(b64('suche_ä'))).toBe('suche_ä');
    expect(decodeMcpHeaderValue('plain')).toBe('plain');
    expect(decodeMcpHeaderValue('=?base64?***?=')).toBeUndefined();
    expect(decodeMcpHeaderValue(`=?base64?${Buffer.from([0xff, 0xfe]).toString('base64')}?=`)).toBeUndefined();
    expect(checkMcpHeaders({ 'mcp-method': 'tools/call', 'mcp-name': b64('suche_ä') }, callBody('suche_ä'))).toBeUndefined();
    expect(checkMcpHeaders({ 'mcp-method': 'tools/call', 'mcp-name': b64('other') }, callBody('suche_ä'))).toMatchObject({ mismatch: { body: 'suche_ä' } });
    expect(checkMcpHeaders({ 'mcp-method': 'tools/call', 'mcp-name': '=?base64?%%?=' }, callBody('x'))).toBeDefined();
  });

  it('requires Mcp-Method from 2026-07-28 on requests, and Mcp-Name whenever the headers are checked', () => {
    expect(checkMcpHeaders({ 'mcp-protocol-version': MODERN }, callBody('search'))).toMatchObject({ id: 7, mismatch: { header: '(missing)', body: 'tools/call' } });
    expect(checkMcpHeaders({ 'mcp-protocol-version': '2027-01-01' }, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).toBeDefined();
    expect(checkMcpHeaders({ 'mcp-method': 'tools/call' }, callBody('search'))).toMatchObject({ mismatch: { header: '(missing)', body: 'search' } });
    // notifications and responses need no Mcp-Method
    expect(checkMcpHeaders({ 'mcp-protocol-version': MODERN }, { jsonrpc: '2.0', method: 'notifications/cancelled', params: {} })).toBeUndefined();
    expect(checkMcpHeaders({ 'mcp-protocol-version': MODERN }, { jsonrpc: '2.0', id: 1, result: {} })).toBeUndefined();
    expect(headersRequired('2026-07-27')).toBe(false);
    expect(headersRequired('garbage')).toBe(false);
  });

  it('refuses a batch with the headers, a repeated header, and a header on a body without a method', () => {
    expect(checkMcpHeaders({ 'mcp-method': 'tools/list' }, [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }])).toMatchObject({ id: null, mismatch: { body: '(batch)' } });
    expect(checkMcpHeaders({ 'mcp-method': ['tools/list', 'tools/call'] } as unknown as IncomingHttpHeaders, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).toBeDefined();
    expect(checkMcpHeaders({ 'mcp-method': 'tools/list' }, undefined)).toMatchObject({ id: null, mismatch: { header: 'tools/list', body: '(missing)' } });
    expect(checkMcpHeaders({ 'mcp-name': 'x' }, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).toBeDefined();
  });

  it('checks a request whose version header is repeated as a 2026-07-28 one', () => {
    expect(checkMcpHeaders({ 'mcp-protocol-version': `${MODERN}, ${MODERN}` }, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).toMatchObject({ mismatch: { header: '(missing)' } });
  });

  it('never throws, and any mismatch has string header and body (property)', () => {
    const value = fc.oneof(fc.constant(undefined), fc.string({ maxLength: 40 }), fc.constantFrom('tools/call', 'tools/list', 'resources/read', MODERN, '=?base64?YQ==?='), fc.array(fc.string(), { maxLength: 3 }));
    const body = fc.oneof(fc.anything(), fc.record({ jsonrpc: fc.constant('2.0'), id: fc.oneof(fc.integer(), fc.string()), method: fc.constantFrom('tools/call', 'tools/list', 'prompts/get', 'resources/read'), params: fc.anything() }, { requiredKeys: [] }));
    fc.assert(
      fc.property(value, value, value, body, (method, name, version, b) => {
        const headers: Record<string, unknown> = {};
        if (method !== undefined) headers['mcp-method'] = method;
        if (name !== undefined) headers['mcp-name'] = name;
        if (version !== undefined) headers['mcp-protocol-version'] = version;
        const out = checkMcpHeaders(headers as IncomingHttpHeaders, b);
        if (out !== undefined) {
          expect(typeof out.mismatch.header).toBe('string');
          expect(typeof out.mismatch.body).toBe('string');
          expect(out.id === null || typeof out.id === 'string' || typeof out.id === 'number').toBe(true);
          expect(() => JSON.stringify(headerMismatchBody(out))).not.toThrow();
        }
        // Headers are required from 2026-07-28 on, and when the version header is repeated (several values, or values joined by a comma).
        const versions = version === undefined ? [] : Array.isArray(version) ? version : [version];
        const repeated = versions.length > 1 || (Array.isArray(version) && version.length === 0) || versions.some((v) => v.includes(','));
        const modern = versions.length === 1 && /^\d{4}-\d{2}-\d{2}$/.test(versions[0]!.trim()) && versions[0]!.trim() >= MODERN;
        if (method === undefined && name === undefined && !repeated && !modern) expect(out).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });
});
