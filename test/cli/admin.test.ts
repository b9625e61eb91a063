import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, expectRefused, expectUsage, startCliBroker, writ, type CliBroker } from '../support/cli';

let b: CliBroker;

beforeAll(async () => {
  b = await startCliBroker(() => ({ WRIT_TRUST_DOMAIN: 'cli.test' }));
});

afterAll(async () => {
  await b?.stop();
});

describe('writ entry: registration entries through the admin API', () => {
  let id: string;

  it('creates an entry and prints it as a table, or as the API\'s JSON with --output json', async () => {
    const table = await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/connector/github', '--owner', 'platform', '--tool', 'issues.read', '--tool', 'search', '--x509-svid-ttl', '30m'], b.env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^id +[0-9a-f-]{36}$/m);
    expect(table.stdout).toMatch(/^spiffe_id +spiffe:\/\/cli\.test\/connector\/github$/m);
    expect(table.stdout).toMatch(/^x509_svid_ttl +1800$/m);
    expect(table.stdout).toMatch(/^tools +issues\.read,search$/m);

    const json = await writ(['--output', 'json', 'entry', 'create', '--spiffe-id', 'spiffe://cli.test/connector/jira', '--selector', 'join_token:x', '--disable'], b.env);
    expect(json.code).toBe(0);
    expect(json.json()).toMatchObject({ spiffe_id: 'spiffe://cli.test/connector/jira', selectors: ['join_token:x'], enabled: false, admin: false });
    id = json.json().id;
  });

  it('creates a workload entry under an agent (--parent-id, unix: selectors), and shows its agent', async () => {
    const res = await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/workload/py', '--parent-id', 'spiffe://cli.test/agent/node-1', '--selector', 'unix:uid:1000'], b.env);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^parent_id +spiffe:\/\/cli\.test\/agent\/node-1$/m);
    expect(res.stdout).toMatch(/^selectors +unix:uid:1000$/m);
    const id = /^id +(\S+)$/m.exec(res.stdout)![1]!;
    expect((await writ(['entry', 'delete', id], b.env)).code).toBe(0);
    expectRefused(await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/workload/py', '--selector', 'unix:uid:1000'], b.env), /parent_id: unix:uid:1000 is a workload selector.*\(400 invalid-entry\)/);
  });

  it('lists, shows (by id or by SPIFFE ID), updates only the fields given, and deletes', async () => {
    const list = await writ(['entry', 'list', '--spiffe-id-prefix', 'spiffe://cli.test/connector/', '-o', 'json'], b.env);
    expect(list.json().entries.map((e: { spiffe_id: string }) => e.spiffe_id).sort()).toEqual(['spiffe://cli.test/connector/github', 'spiffe://cli.test/connector/jira']);
    const table = await writ(['entry', 'list', '--enabled', 'false'], b.env);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID +SPIFFE ID +SELECTORS +ADMIN +ENABLED +OWNER$/);
    expect(table.stdout).toContain('spiffe://cli.test/connector/jira');
    expect(table.stdout).not.toContain('connector/github');

    const show = await writ(['entry', 'show', 'spiffe://cli.test/connector/github', '-o', 'json'], b.env);
    expect(show.json()).toMatchObject({ metadata: { owner: 'platform', tools: ['issues.read', 'search'] } });
    // --description merges into the metadata there; --enable and --admin change only those.
    const updated = await writ(['entry', 'update', show.json().id, '--description', 'GitHub', '--admin', '-o', 'json'], b.env);
    expect(updated.json()).toMatchObject({ admin: true, metadata: { owner: 'platform', description: 'GitHub', tools: ['issues.read', 'search'] } });
    expect((await writ(['entry', 'update', id, '--enable', '-o', 'json'], b.env)).json()).toMatchObject({ enabled: true, selectors: ['join_token:x'] });

    const deleted = await writ(['entry', 'delete', id], b.env);
    expect(deleted).toMatchObject({ code: 0, stdout: `deleted entry ${id}\n` });
    expectRefused(await writ(['entry', 'show', id], b.env), /\(404 entry-not-found\)$/m);
  });

  it('refuses with the broker\'s problem detail in one line (exit 1), and bad input with the usage (exit 2)', async () => {
    // The broker's validation: a SPIFFE ID of another trust domain.
    expectRefused(await writ(['entry', 'create', '--spiffe-id', 'spiffe://other.test/x'], b.env), /trust domain "cli\.test".*\(400 invalid-request\)/);
    // A wrong admin token: 401, and the token is not echoed.
    const wrong = await writ(['entry', 'list'], { ...b.env, WRIT_ADMIN_TOKEN: 'not-the-admin-token-at-all' });
    expectRefused(wrong, /\(401 unauthenticated\)/);
    expect(wrong.stderr).not.toContain('not-the-admin-token-at-all');
    // No credential at all, a malformed id, a bad duration, an unknown option, conflicting options.
    expectUsage(await writ(['entry', 'list'], b.anonymous), 'writ entry list', /admin commands need a credential/);
    expectUsage(await writ(['entry', 'show', 'not-a-uuid'], b.env), 'writ entry show', /expected a UUID/);
    expectUsage(await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/a', '--jwt-svid-ttl', 'soon'], b.env), 'writ entry create', /expected a duration/);
    expectUsage(await writ(['entry', 'update', '--frobnicate'], b.env), 'writ entry update', /unknown option '--frobnicate'/);
    expectUsage(await writ(['entry', 'update', '--enable', '--disable', '00000000-0000-4000-8000-000000000000'], b.env), 'writ entry update', /cannot be used with/);
  });
});

describe('writ join-token create', () => {
  it('prints the token once (it is what the command is for), or writes it to a 0600 file with --token-file', async () => {
    await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/agent/a'], b.env);
    const shown = await writ(['join-token', 'create', '--spiffe-id', 'spiffe://cli.test/agent/a', '--ttl', '5m', '-o', 'json'], b.env);
    expect(shown.json()).toMatchObject({ token: expect.any(String), spiffe_id: 'spiffe://cli.test/agent/a' });
    const expiresIn = Date.parse(shown.json().expires_at) - Date.now();
    expect(expiresIn).toBeGreaterThan(250_000);
    expect(expiresIn).toBeLessThanOrEqual(300_000);

    const file = join(b.work, 'join.token');
    const written = await writ(['join-token', 'create', '--spiffe-id', 'spiffe://cli.test/agent/a', '--token-file', file], b.env);
    expect(written.code).toBe(0);
    expect(written.stdout).toContain(`written to ${file}`);
    const token = readFileSync(file, 'utf8').trim();
    expect(token.length).toBeGreaterThan(16);
    expect(written.stdout + written.stderr).not.toContain(token);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    expectUsage(await writ(['join-token', 'create'], b.env), 'writ join-token create', /--spiffe-id or --entry-id/);
    expectRefused(await writ(['join-token', 'create', '--spiffe-id', 'spiffe://cli.test/nobody'], b.env), /no registration entry for spiffe:\/\/cli\.test\/nobody \(404 entry-not-found\)/);
  });
});

describe('writ policy get|set', () => {
  it('puts a policy set in force and reads it back; an invalid one is refused with Cedar\'s errors in one line', async () => {
    const empty = await writ(['policy', 'get'], b.env);
    expect(empty).toMatchObject({ code: 0, stdout: '' });
    expect(empty.stderr).toContain('no policy set');

    const file = join(b.work, 'writ.cedar');
    const text = '@id("read-all")\npermit (principal, action == Writ::Action::"read", resource is Writ::Tool);\n';
    writeFileSync(file, text);
    expect((await writ(['policy', 'set', file, '-o', 'json'], b.env)).json()).toMatchObject({ version: 1 });
    expect(await writ(['policy', 'get'], b.env)).toMatchObject({ code: 0, stdout: text });
    expect((await writ(['policy', 'get', '-o', 'json'], b.env)).json()).toMatchObject({ version: 1, policies: text, created_by: 'admin' });

    writeFileSync(file, 'permit (principal, action == Writ::Action::"fly", resource);\nforbid (principal, action, resource) when { context.nope };\n');
    expectRefused(await writ(['policy', 'set', file], b.env), /not valid \(7 errors\): (?=.*`nope`)(?=.*"fly").*\(400 invalid-policy\)$/m);
    expectRefused(await writ(['policy', 'set', join(b.work, 'missing.cedar')], b.env), /cannot read the policy file .*missing\.cedar: ENOENT/);
  });
});

describe('writ connector disable|enable, revoke --connector, leases', () => {
  it('disables a connector (kill switch), enables it again, and shows the blast radius of a revocation', async () => {
    await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/connector/slack'], b.env);
    const disabled = await writ(['connector', 'disable', 'spiffe://cli.test/connector/slack', '--reason', 'compromised', '-o', 'json'], b.env);
    expect(disabled.json()).toEqual({ spiffe_id: 'spiffe://cli.test/connector/slack', entries_disabled: 1, leases_revoked: 0 });
    expect((await writ(['entry', 'show', 'spiffe://cli.test/connector/slack', '-o', 'json'], b.env)).json().enabled).toBe(false);
    const enabled = await writ(['connector', 'enable', 'spiffe://cli.test/connector/slack'], b.env);
    expect(enabled.stdout).toMatch(/^entries_enabled +1$/m);
    expect((await writ(['entry', 'show', 'spiffe://cli.test/connector/slack', '-o', 'json'], b.env)).json().enabled).toBe(true);
    expectRefused(await writ(['connector', 'disable', 'spiffe://cli.test/connector/none'], b.env), /404 entry-not-found/);

    const dry = await writ(['revoke', '--connector', 'spiffe://cli.test/connector/', '--dry-run', '-o', 'json'], b.env);
    expect(dry.json()).toMatchObject({ dry_run: true, leases: 0, sample: [] });
    expect((await writ(['revoke', '--connector', 'spiffe://cli.test/connector/', '--dry-run'], b.env)).stdout).toBe('dry run: would revoke 0 leases\n');
    expect((await writ(['leases', '--connector', 'spiffe://cli.test/connector/slack', '-o', 'json'], b.env)).json()).toEqual({ leases: [] });

    expectUsage(await writ(['revoke', '--connector', 'spiffe://cli.test/connector/slack'], b.env), 'writ revoke', /--reason is required/);
    expectUsage(await writ(['revoke', '--reason', 'x'], b.env), 'writ revoke', /name one handle/);
    expectUsage(await writ(['revoke', '--user', 'alice', '--reason', 'x'], b.env), 'writ revoke', /need --issuer/);
    expectUsage(await writ(['revoke', '--jti', '00000000-0000-4000-8000-000000000000', '--task', '00000000-0000-4000-8000-000000000000', '--reason', 'x'], b.env), 'writ revoke', /name one handle/);
    expectRefused(await writ(['leases', '--issuer', 'https://idp.test'], b.env), /filter by one of/);
  });
});

describe('writ audit verify|export, writ ca rotate', () => {
  it('verifies the chain, exports it as JSON Lines (to stdout or, complete, to a file), and rotates the CA', async () => {
    const verify = await writ(['audit', 'verify', '-o', 'json'], b.env);
    expect(verify.json()).toMatchObject({ ok: true, events: expect.any(Number), head: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect((await writ(['audit', 'verify'], b.env)).stdout).toMatch(/^ok +true\nevents +\d+\nhead +[0-9a-f]{64}\n$/);

    const exported = await writ(['audit', 'export', '--type', 'entry.*'], b.env);
    expect(exported.code).toBe(0);
    const events = exported.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(events.length).toBeGreaterThanOrEqual(5);
    expect(events.every((e) => e.type.startsWith('entry.'))).toBe(true);
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((x, y) => x - y));

    const file = join(b.work, 'audit.jsonl');
    expect((await writ(['audit', 'export', '--after', String(events[0].seq), '--out', file], b.env)).code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!).seq).toBe(events[0].seq + 1);
    expectRefused(await writ(['audit', 'export', '--since', 'yesterday'], b.env), /since: .*ISO 8601/);

    const rotated = await writ(['ca', 'rotate', '--overlap', '1h', '-o', 'json'], b.env);
    expect(rotated.code).toBe(0);
    const activates = Date.parse(rotated.json().activates_at) - Date.now();
    expect(activates).toBeGreaterThan(3_500_000);
    expect(activates).toBeLessThanOrEqual(3_600_000);
    expect(rotated.json()).toMatchObject({ x509_authority: expect.any(String), jwt_authority: expect.any(String), spiffe_sequence: expect.any(Number) });
    expectUsage(await writ(['ca', 'rotate', '--overlap', 'a while'], b.env), 'writ ca rotate', /expected a duration/);
  });
});

describe('a second entry for a SPIFFE ID', () => {
  it('warns (one line, exit 0) when it has no selectors; join-token create then names --entry-id and the ids', async () => {
    const id = 'spiffe://cli.test/agent/twin';
    const first = await writ(['entry', 'create', '--spiffe-id', id, '-o', 'json'], b.env);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    const second = await writ(['entry', 'create', '--spiffe-id', id, '-o', 'json'], b.env);
    expect(second.code).toBe(0);
    expect(second.json().spiffe_id).toBe(id);
    expect(second.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(second.stderr).toMatch(new RegExp(`^writ: warning: 2 entries now name ${id.replace(/[/.]/g, '\\$&')} .*--entry-id ${second.json().id}`));
    // With a selector to tell it apart: no warning.
    expect(await writ(['entry', 'create', '--spiffe-id', id, '--selector', 'join_token:twin'], b.env)).toMatchObject({ code: 0, stderr: '' });

    const refused = await writ(['join-token', 'create', '--spiffe-id', id], b.env);
    expectRefused(refused, /3 entries name spiffe:\/\/cli\.test\/agent\/twin: give --entry-id \(one of .*\) instead of --spiffe-id \(400 invalid-entry\)$/m);
    expect(refused.stderr).toContain(first.json().id);
    expect(refused.stderr).not.toMatch(/give entry_id/);
    const byId = await writ(['join-token', 'create', '--entry-id', first.json().id, '-o', 'json'], b.env);
    expect(byId.json()).toMatchObject({ entry_id: first.json().id, spiffe_id: id });
  });
});

describe('writ audit list|tail', () => {
  it('lists events newest first with the REST API\'s filters, as a table or as the API\'s JSON, with a --before cursor', async () => {
    const all = (await writ(['audit', 'list', '--type', 'entry.*', '--limit', '2', '-o', 'json'], b.env)).json();
    expect(all.events).toHaveLength(2);
    expect(all.events.every((e: { type: string }) => e.type.startsWith('entry.'))).toBe(true);
    expect(all.events[0].seq).toBeGreaterThan(all.events[1].seq);
    expect(all.next_before).toBe(all.events[1].seq);
    const next = (await writ(['audit', 'list', '--type', 'entry.*', '--limit', '1', '--before', String(all.next_before), '-o', 'json'], b.env)).json();
    expect(next.events[0].seq).toBeLessThan(all.events[1].seq);

    expect((await writ(['audit', 'list', '--actor', 'admin', '--since', '2000-01-01T00:00:00Z', '--until', '2999-01-01T00:00:00Z', '--limit', '5', '-o', 'json'], b.env)).json().events.every((e: { actor: string }) => e.actor === 'admin')).toBe(true);
    expect((await writ(['audit', 'list', '--subject', 'nobody-at-all', '-o', 'json'], b.env)).json()).toEqual({ events: [] });
    // Sent as the API's subject_issuer filter: with it ignored, every event would come back.
    expect((await writ(['audit', 'list', '--subject-issuer', 'https://no-such-idp.test', '-o', 'json'], b.env)).json()).toEqual({ events: [] });

    const table = await writ(['audit', 'list', '--type', 'entry.created', '--limit', '1'], b.env);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^SEQ +AT +TYPE +SUBJECT +ISSUER +ACTOR +DETAILS$/);
    expect(table.stdout.split('\n')[1]).toMatch(/^\d+ +\d{4}-\d\d-\d\dT\S+ +entry\.created /);
    expect(table.stderr).toMatch(/^more events: --before \d+$/m);

    expectRefused(await writ(['audit', 'list', '--since', 'yesterday'], b.env), /since: .*ISO 8601/);
    expectUsage(await writ(['audit', 'list', '--limit', '0'], b.env), 'writ audit list', /positive whole number/);
  });

  it('tails: prints the events recorded after --after as they arrive, stops after --count', async () => {
    const head = (await writ(['audit', 'list', '--limit', '1', '-o', 'json'], b.env)).json().events[0].seq as number;
    const tail = writ(['audit', 'tail', '--after', String(head), '--count', '2', '--interval', '1', '--type', 'entry.*', '-o', 'json'], b.env);
    await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/tail/one'], b.env);
    await writ(['entry', 'create', '--spiffe-id', 'spiffe://cli.test/tail/two'], b.env);
    const run = await tail;
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const events = run.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => [e.type, e.details.spiffe_id ?? e.subject])).toHaveLength(2);
    expect(events.every((e) => e.type === 'entry.created' && e.seq > head)).toBe(true);
    expect(events[1].seq).toBeGreaterThan(events[0].seq);

    const table = await writ(['audit', 'tail', '--after', String(head), '--count', '1', '--type', 'entry.*'], b.env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${events[0].seq} +\\S+ +entry\\.created `));
    expectUsage(await writ(['audit', 'tail', '--interval', '0'], b.env), 'writ audit tail', /at least 1s/);
  });

  it('tails until interrupted: SIGTERM (or SIGINT) exits 0', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const child = spawn(process.execPath, [CLI, 'audit', 'tail', '--after', '1', '--interval', '1'], { env: { PATH: process.env.PATH, ...b.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      // The first events (after seq 1) are printed at once: then it is polling.
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      child.kill(signal);
      expect(await exited).toBe(0);
      expect(stderr).toBe('');
    }
  });
});
