import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Express, Router } from 'express';
import pino from 'pino';
import { adminOnly, approvalsRouter, consoleRouter, signInRouter, adminRouter, vaultAdminRouter, vaultLinksRouter, agentRouter, authzenRouter, bundleRouter, createApiApp, HttpMetrics, oauthRouter, openApiDocument, signalsRouter, svidRouter, tasksRouter, type AdminDeps } from '../../src/api';
import { systemRandom } from '../../src/core/random';
import { serveApi } from '../support/api';
import { documentedOperation, responseMismatches } from '../support/openapi';

// The OpenAPI document (src/api/openapi) against the routers, the committed docs/openapi.json and itself.

const DOC_FILE = join(__dirname, '../../docs/openapi.json');
const REGENERATE = 'npm run openapi';
const doc = openApiDocument() as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** The broker's routers as src/broker.ts mounts them, over deps no route is called with. */
function brokerApp(): Express {
  const none = {} as never;
  const auth = { admin: none, entries: none, leases: none, clock: none, trustDomain: 'example.org' };
  return createApiApp({
    logger: pino({ level: 'silent' }),
    metrics: new HttpMetrics(),
    random: systemRandom,
    routers: [
      oauthRouter({ issuer: 'https://writ.example', exchange: none, introspection: none, revocation: none, admin: none, trustDomain: 'example.org' }),
      bundleRouter(none),
      svidRouter({ ...auth, issuer: none, denylist: none }),
      agentRouter({ ...auth, issuer: none, revokedSerials: none }),
      authzenRouter({ ...auth, evaluator: none, issuer: 'https://writ.test' }),
      tasksRouter({ ...auth, tasks: none, events: none, resources: none }),
      approvalsRouter({ ...auth, approvals: none } as never),
      signInRouter({ clientId: 'writ-console', issuers: [] }),
      consoleRouter({ signIn: none, roleOf: none }),
      signalsRouter({ intake: none }),
      vaultLinksRouter({ vault: none }),
      adminOnly(auth as never, vaultAdminRouter({ vault: none, providers: none })),
      adminRouter({ ...auth, limits: { trustDomain: 'example.org', x509SvidMaxTtl: 86400, jwtSvidMaxTtl: 3600 } } as unknown as AdminDeps),
    ],
  });
}

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every method + path Express registered (Express 5: `app.router`), wildcard middleware routes (`/oauth2/*path`) aside. */
function registeredRoutes(app: Express): string[] {
  const out: string[] = [];
  const walk = (stack: readonly Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        if (layer.route.path.includes('*')) continue;
        for (const [m, on] of Object.entries(layer.route.methods)) if (on && m !== '_all') out.push(`${m.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: Router & { stack: Layer[] } }).router.stack);
  return out.sort();
}

const documentedRoutes = () =>
  Object.entries(doc.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, item]) => Object.keys(item).filter((k) => METHODS.includes(k)).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1: info, paths whose every operation has responses with descriptions, unique operation ids', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: 'Writ', version: JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')).version });
    expect(doc.servers).toBeUndefined();
    const ids: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) { // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(path).toMatch(/^\//);
      expect(path).not.toMatch(/:/);
      for (const [method, op] of Object.entries(item)) {
        expect(METHODS).toContain(method);
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const [status, r] of Object.entries(op.responses as Record<string, { description?: string }>)) {
          expect(status).toMatch(/^[1-5]\d\d$/);
          expect(typeof r.description).toBe('string');
        }
        // Every path template parameter is declared (OpenAPI 3.1 §4.8.12.1).
        for (const [, name] of path.matchAll(/\{([^}]+)\}/g)) expect(op.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name, in: 'path', required: true })]));
        for (const s of op.security) for (const scheme of Object.keys(s)) expect(doc.components.securitySchemes).toHaveProperty(scheme);
        ids.push(op.operationId);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('resolves every $ref inside the document', () => {
    const refs: string[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) k === '$ref' && typeof x === 'string' ? refs.push(x) : walk(x);
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref).toMatch(/^#\//);
      const target = ref.slice(2).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).reduce<any>((node, key) => node?.[key], doc); // eslint-disable-line @typescript-eslint/no-explicit-any
      expect([ref, target !== undefined]).toEqual([ref, true]);
    }
  });

  it('describes the OAuth endpoints as forms with RFC 6749 §5.2 errors, the others with RFC 9457 problems, and mTLS, bearer and DPoP', () => {
    for (const path of ['/oauth2/token', '/oauth2/introspect', '/oauth2/revoke']) {
      expect(Object.keys(doc.paths[path].post.requestBody.content)).toEqual(['application/x-www-form-urlencoded']);
      expect(doc.paths[path].post.responses['400'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/OAuthError' });
    }
    expect(doc.paths['/oauth2/token'].post.parameters).toEqual([expect.objectContaining({ name: 'DPoP', in: 'header' })]);
    expect(doc.paths['/v1/admin/entries'].post.responses['401'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
    expect(doc.components.securitySchemes.svid.type).toBe('mutualTLS');
    expect(doc.components.securitySchemes.adminBearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/v1/admin/entries'].get.security).toEqual([{ adminBearer: [] }, { svid: [] }]);
    expect(doc.paths['/openapi.json'].get.security).toEqual([]);
  });

  it('describes the audit routes with subject_issuer on each event and as a filter', () => {
    const list = doc.paths['/v1/admin/audit'].get;
    expect(list.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'subject_issuer', in: 'query', required: false })]));
    expect(doc.paths['/v1/admin/audit/export'].get.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'subject_issuer' })]));
    const event = list.responses['200'].content['application/json'].schema.properties.events.items;
    expect(event.required).toContain('subject_issuer');
    expect(event.properties.subject_issuer).toEqual(expect.objectContaining({ type: ['string', 'null'] }));
  });

  it('has every route the routers register, and only those', () => {
    const registered = registeredRoutes(brokerApp());
    expect(registered.length).toBeGreaterThan(30);
    expect(registered).toEqual(documentedRoutes());
  });

  it('is committed as docs/openapi.json as the code generates it', () => {
    const generated = `${JSON.stringify(doc, null, 2)}\n`;
    if (process.env.OPENAPI_WRITE === '1') writeFileSync(DOC_FILE, generated);
    let committed = '';
    try {
      committed = readFileSync(DOC_FILE, 'utf8');
    } catch {
      // missing: the comparison below fails with the command to run
    }
    if (committed !== generated) throw new Error(`docs/openapi.json differs from what src/api/openapi generates: run \`${REGENERATE}\``);
  });
});

describe('GET /openapi.json', () => {
  it('serves the document publicly as application/json', async () => {
    const api = await serveApi({ routers: [] });
    try {
      const res = await fetch(`${api.base}/openapi.json`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual(doc);
    } finally {
      await api.close();
    }
  });
});

describe('the response check of the test helpers', () => {
  const problem = JSON.stringify({ type: 'urn:writ:problem:unauthenticated', title: 'Unauthorized', status: 401, detail: 'no' });
  it('passes a documented answer and refuses a wrong body, an undocumented status and an undocumented media type', () => {
    expect(responseMismatches('GET', 'https://x/v1/admin/entries/abc', 401, 'application/problem+json; charset=utf-8', problem)).toEqual([]);
    expect(responseMismatches('POST', 'https://x/v1/jwt-svid', 201, 'application/json', JSON.stringify({ token: 't', spiffe_id: 's' }))).toEqual([expect.stringContaining("must have required property 'expires_at'")]);
    expect(responseMismatches('GET', 'https://x/v1/admin/entries/abc', 418, 'application/problem+json', problem)).toEqual([expect.stringContaining('status 418 is not documented')]);
    expect(responseMismatches('GET', 'https://x/v1/admin/entries/abc', 401, 'text/html', '<p>')).toEqual([expect.stringContaining('content type text/html is not documented')]);
    expect(responseMismatches('POST', 'https://x/oauth2/token', 400, 'application/json', problem)).not.toEqual([]);
  });
  it('leaves undocumented operations alone', () => {
    expect(documentedOperation('GET', '/nowhere')).toBeUndefined();
    expect(responseMismatches('GET', 'https://x/nowhere', 404, 'application/problem+json', problem)).toEqual([]);
  });
});
