import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectRefused, expectUsage, startCliBroker, writ, type CliBroker } from '../support/cli';

let b: CliBroker;
const work = mkdtempSync(join(tmpdir(), 'writ-cli-provider-'));
const SECRET = 'a client secret from the SaaS console';

beforeAll(async () => {
  b = await startCliBroker(() => ({ WRIT_TRUST_DOMAIN: 'cli.test' }));
  writeFileSync(join(work, 'secret'), `${SECRET}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await b?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('writ provider: the token vault\'s SaaS authorization servers', () => {
  it('adds (the secret from a file, never shown again), lists, shows, updates and removes a provider', async () => {
    const added = await writ(['provider', 'add', 'notes', '--issuer', 'https://auth.notes.cli.test', '--client-id', 'writ', '--client-secret-file', join(work, 'secret'), '--scope', 'notes:read', '--scope', 'notes:write', '--revoke-on', 'session'], b.env);
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^scopes +notes:read,notes:write$/m);
    expect(added.stdout).toMatch(/^revoke_on +session$/m);
    expect(added.stdout).not.toContain(SECRET);
    const listed = await writ(['provider', 'list'], b.env);
    expect(listed.stdout.split('\n')[0]).toMatch(/^ID +ISSUER +SCOPES +CLASS$/);
    expect(listed.stdout).toMatch(/^notes +https:\/\/auth\.notes\.cli\.test +notes:read,notes:write +confidential$/m);
    const shown = await writ(['provider', 'show', 'notes', '-o', 'json'], b.env);
    expect(shown.json()).toMatchObject({ id: 'notes', client_id: 'writ', client_auth: 'client_secret_basic' });
    expect(JSON.stringify(shown.json())).not.toContain(SECRET);
    const updated = await writ(['provider', 'update', 'notes', '--client-secret-file', join(work, 'secret'), '--scope', 'notes:write', '-o', 'json'], b.env);
    expect(updated.json().scopes).toEqual(['notes:write']);
    const audited = await writ(['audit', 'list', '--type', 'provider.updated', '-o', 'json'], b.env);
    expect(audited.json().events[0].details).toEqual({ provider: 'notes', changed: ['credential', 'scopes'] });
    expect((await writ(['provider', 'grants', '-o', 'json'], b.env)).json()).toEqual({ grants: [] });
    expect(await writ(['provider', 'remove', 'notes'], b.env)).toMatchObject({ code: 0, stdout: 'removed provider notes\n' });
    expectRefused(await writ(['provider', 'show', 'notes'], b.env), /\(404 provider-not-found\)/);
  });

  it('takes the secret from a file only, the one the client authentication needs; the broker refuses what it refuses', async () => {
    expectUsage(await writ(['provider', 'add', 'x', '--issuer', 'https://a.cli.test', '--client-id', 'w', '--scope', 's'], b.env), 'writ provider add', /needs --client-secret-file/);
    expectUsage(await writ(['provider', 'add', 'x', '--issuer', 'https://a.cli.test', '--client-id', 'w', '--scope', 's', '--client-auth', 'private_key_jwt', '--private-key-file', join(work, 'secret'), '--client-secret-file', join(work, 'secret')], b.env), 'writ provider add', /takes --private-key-file, not --client-secret-file/);
    expectRefused(await writ(['provider', 'add', 'x', '--issuer', 'http://a.cli.test', '--client-id', 'w', '--scope', 's', '--client-secret-file', join(work, 'secret')], b.env), /\(400 invalid-request\)/);
  });
});
