import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import pino from 'pino';
import type { AdminCredentials } from '../../admin';
import { EntryError, EntryStore, type EntryInput, type RegistrationEntry } from '../../attestation/entries';
import type { JoinTokens } from '../../attestation/join-token';
import { ManualClock } from '../../core/clock';
import { systemRandom } from '../../core/random';
import { findTextProblem } from '../../core/text';
import type { LeaseStore, Revocations } from '../../leases';
import type { PolicyStore } from '../../policy';
import type { AuditReader } from '../../audit';
import type { ResourceStore } from '../../resources';
import { isBrokerPath, parseSpiffeId } from '../../spiffe/id';
import { adminRouter } from '.';
import { createApiApp } from '../app';
import { HttpMetrics } from '../metrics';
import { errorHandler } from '../problem';

// The admin bodies (POST /v1/admin/entries, /join-tokens, /revocations) through the real
// parsers, the control-character check and the schemas, in front of stores that only record
// what reaches them: any JSON gets a 2xx or a 4xx whose detail names the field, and what
// reaches a store is valid and storable.

const RUNS = Number(process.env.FC_RUNS ?? 300);
const TD = 'prop.test';
const TOKEN = 'writ_admin_property';
const KNOWN = randomUUID();

const created: EntryInput[] = [];
const selectors: unknown[] = [];
const entry = (id: string, spiffeId: string): RegistrationEntry => ({
  id, spiffeId, selectors: [], x509SvidTtl: 600, jwtSvidTtl: 300, dnsNames: [], admin: false, enabled: true, metadata: {}, createdAt: new Date(0), updatedAt: new Date(0),
});
const entries = {
  create: async (input: EntryInput) => (created.push(input), entry(randomUUID(), input.spiffe_id)),
  require: async (id: string) => {
    if (id !== KNOWN) throw new EntryError(404, 'entry-not-found', 'no registration entry');
    return entry(KNOWN, `spiffe://${TD}/known`);
  },
  get: async () => undefined,
  bySpiffeId: async (id: string) => (id === `spiffe://${TD}/known` ? [entry(KNOWN, id)] : []),
} as unknown as EntryStore;
const revocations = {
  revoke: async (selector: unknown) => (selectors.push(selector), 0),
  dryRun: async (selector: unknown) => (selectors.push(selector), { leases: 0, sample: [], byUser: {}, byConnector: {}, byTask: {}, byAudience: {} }),
} as unknown as Revocations;

let server: Server;
let base: string;

beforeAll(async () => {
  const app = createApiApp({
    routers: [
      adminRouter({
        admin: { verify: (t: string) => t === TOKEN } as unknown as AdminCredentials,
        roleBindings: { list: async () => [], create: async () => { throw new Error('not in this test'); }, delete: async () => undefined },
        entries,
        leases: {} as LeaseStore,
        clock: new ManualClock(),
        trustDomain: TD,
        // The real entry resolution (EntryStore.forJoinToken) over the recording store.
        joinTokens: {
          issue: async (ref: { entryId: string } | { spiffeId: string }) => ({ token: 'writ_jt_x', expiresAt: new Date(0), entry: await EntryStore.prototype.forJoinToken.call(entries, ref) }),
        } as unknown as JoinTokens,
        auditReader: {} as AuditReader,
        limits: { trustDomain: TD, x509SvidMaxTtl: 86400, jwtSvidMaxTtl: 3600 },
        resources: {} as ResourceStore,
        policies: {} as PolicyStore,
        revocations,
        rotateCa: async () => {
          throw new Error('not in this test');
        },
      }),
    ],
    logger: pino({ level: 'silent' }),
    metrics: new HttpMetrics(),
    random: systemRandom,
  });
  app.use(errorHandler(pino({ level: 'silent' })));
  server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

const post = async (path: string, body: string) => {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body });
  return { status: res.status, json: (await res.json().catch(() => undefined)) as { type?: string; detail?: string } | undefined };
};

const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('\u0000', 'a\u0001', '\ud800', '', `spiffe://${TD}/a`, `spiffe://${TD}/writ/server`, `spiffe://${TD}/writ`, `spiffe://${TD}/known`, 'spiffe://other.test/a', KNOWN, 'oidc:iss:https://i.example', 'join_token:x', 'localhost'),
);
const json = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, text, fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(text, tie('value'), { maxKeys: 3 })),
})).value;
/** A body with each route's member names, hostile values, and sometimes a stranger member. */
const body = (members: readonly string[]) => fc.dictionary(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...members) }, { weight: 1, arbitrary: text }), fc.oneof(text, json), { maxKeys: members.length + 1 });
/** Mostly `valid`, sometimes `hostile`: so that hostile values meet the checks behind the first one. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<U>) => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostile });
const segment = fc.string({ unit: fc.constantFrom(...'abcxyz019-_.'.split('')), minLength: 1, maxLength: 8 }).filter((s) => s !== '.' && s !== '..');
const spiffeId = fc.oneof(fc.array(segment, { minLength: 1, maxLength: 3 }).map((segs) => `spiffe://${TD}/${segs.join('/')}`), fc.constantFrom(`spiffe://${TD}/writ/server`, `spiffe://${TD}/writ`, `spiffe://${TD}/writ/a/b`));
const someText = mostly(fc.string({ minLength: 1, maxLength: 20 }), text);
const withStranger = <T extends object>(arb: fc.Arbitrary<T>) => fc.tuple(arb, fc.option(fc.dictionary(text, json, { minKeys: 1, maxKeys: 1 }), { freq: 5 })).map(([b, extra]) => ({ ...b, ...extra }));
const entryBody = fc.oneof(
  body(['spiffe_id', 'selectors', 'x509_svid_ttl', 'jwt_svid_ttl', 'dns_names', 'admin', 'enabled', 'metadata']),
  withStranger(
    fc.record(
      {
        spiffe_id: mostly(spiffeId, json),
        selectors: mostly(fc.array(fc.constantFrom('join_token:x', 'oidc:iss:https://i.example', 'oidc:sub:a', 'x509pop:subject_cn:a'), { maxLength: 2 }), json),
        x509_svid_ttl: mostly(fc.integer({ min: 1, max: 86400 }), json),
        dns_names: mostly(fc.array(fc.constantFrom('a.example', 'localhost'), { maxLength: 2 }), json),
        admin: mostly(fc.boolean(), json),
        metadata: mostly(fc.record({ owner: someText, description: someText, mcp_server_uri: mostly(fc.constant('https://mcp.example/x'), text), tools: fc.array(someText, { maxLength: 2 }) }, { requiredKeys: [] }), json),
      },
      { requiredKeys: ['spiffe_id'] },
    ),
  ),
);
const joinTokenBody = fc.oneof(
  body(['spiffe_id', 'entry_id', 'ttl']),
  withStranger(fc.record({ spiffe_id: mostly(fc.constant(`spiffe://${TD}/known`), spiffeId), ttl: mostly(fc.integer({ min: 1, max: 7 * 86400 }), json) }, { requiredKeys: ['spiffe_id'] })),
  withStranger(fc.record({ entry_id: mostly(fc.constant(KNOWN), fc.oneof(fc.uuid(), text)), ttl: mostly(fc.integer({ min: 1, max: 7 * 86400 }), json) }, { requiredKeys: ['entry_id'] })),
);
const pair = (a: string, b: string) => mostly(fc.record({ [a]: someText, [b]: someText }), json);
const selectorForm = fc.oneof(
  fc.record({ jti: mostly(fc.uuid(), text) }),
  fc.record({ task_id: mostly(fc.uuid(), text) }),
  fc.record({ user: pair('issuer', 'subject') }),
  fc.record({ session: pair('issuer', 'sid') }),
  fc.record({ connector: mostly(spiffeId, text) }),
  fc.record({ email: pair('issuer', 'email') }),
  fc.record({ audience: someText }),
  fc.record({ user: pair('issuer', 'subject'), connector: mostly(spiffeId, text) }),
);
const revocationBody = fc.oneof(
  body(['reason', 'dry_run', 'jti', 'task_id', 'user', 'session', 'connector', 'email', 'audience']),
  withStranger(fc.tuple(fc.record({ reason: mostly(fc.constant('incident 42'), json), dry_run: mostly(fc.boolean(), json) }, { requiredKeys: ['reason'] }), selectorForm).map(([r, sel]) => ({ ...r, ...sel }))),
);
/** Answers seen per property, to check that the generators reach success too. */
const seen = new Map<string, Set<number>>();
const saw = (route: string, status: number) => seen.set(route, (seen.get(route) ?? new Set()).add(status));

/** A refusal names what is wrong: a field path, the whole body's shape, or a rule across fields; never zod's bare "Invalid input". */
function expectNamed(res: { status: number; json?: { type?: string; detail?: string } }, sent: unknown): void {
  expect(res.status).toBeLessThan(500);
  if (res.status !== 400) return;
  const detail = res.json?.detail ?? '';
  expect(detail).not.toBe('Invalid input');
  expect(detail.length).toBeGreaterThan(0);
  // Only a body that is not an object at all may be refused as a whole ("Invalid input: expected object, …").
  const wholeBody = typeof sent !== 'object' || sent === null || Array.isArray(sent);
  if (!wholeBody) expect(detail).not.toMatch(/^Invalid input/);
}

describe('admin bodies through the parsers, the checks and the schemas, properties', () => {
  it('POST /v1/admin/entries: 201 only for a valid, storable entry outside /writ; otherwise a 400 naming the field', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 5, arbitrary: entryBody }, { weight: 1, arbitrary: json }), async (b) => {
        created.length = 0;
        const res = await post('/v1/admin/entries', JSON.stringify(b) ?? 'null');
        saw('entries', res.status);
        expectNamed(res, b);
        if (res.status !== 201) return expect(created).toEqual([]);
        const input = created[0]!;
        const id = parseSpiffeId(input.spiffe_id);
        expect(id.trustDomain).toBe(TD);
        expect(isBrokerPath(id.path)).toBe(false);
        expect(findTextProblem(input, 'text')).toBeUndefined();
      }),
      // One body that must be accepted and one that must be refused, besides the generated ones.
      { numRuns: RUNS, examples: [[{ spiffe_id: `spiffe://${TD}/example` }], [{ spiffe_id: `spiffe://${TD}/writ/server` }]] },
    );
  });

  it('POST /v1/admin/join-tokens: a token only for a known entry; otherwise a 4xx naming what is wrong', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 5, arbitrary: joinTokenBody }, { weight: 1, arbitrary: json }), async (b) => {
        const res = await post('/v1/admin/join-tokens', JSON.stringify(b) ?? 'null');
        saw('join-tokens', res.status);
        expectNamed(res, b);
        const sent = b as Record<string, unknown>;
        if (res.status === 201) expect(sent.entry_id === KNOWN || sent.spiffe_id === `spiffe://${TD}/known`).toBe(true);
      }),
      { numRuns: RUNS, examples: [[{ entry_id: KNOWN }], [{ entry_id: 'a\u0000' }]] },
    );
  });

  it('POST /v1/admin/revocations: a selector reaches the store only when it is one of the accepted forms, without control characters', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 5, arbitrary: revocationBody }, { weight: 1, arbitrary: json }), async (b) => {
        selectors.length = 0;
        const res = await post('/v1/admin/revocations', JSON.stringify(b) ?? 'null');
        saw('revocations', res.status);
        expectNamed(res, b);
        if (res.status !== 200) return expect(selectors).toEqual([]);
        expect(selectors).toHaveLength(1);
        expect(findTextProblem(selectors[0], 'identifier')).toBeUndefined();
      }),
      { numRuns: RUNS, examples: [[{ jti: '00000000-0000-4000-8000-000000000000', reason: 'example' }], [{ jti: 'not-a-uuid', reason: 'example' }]] },
    );
  });

  it('the generators reached both acceptance and refusal on every route', () => {
    expect(Object.fromEntries([...seen].map(([route, statuses]) => [route, [...statuses].some((s) => s < 300) && statuses.has(400)]))).toEqual({ entries: true, 'join-tokens': true, revocations: true });
  });
});
