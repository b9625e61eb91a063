import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { httpsRequest } from '../support/https';
import { openssl } from '../support/openssl';
import { expectRefused, expectUsage, startCliBroker, writ, type CliBroker } from '../support/cli';

const IDP = 'https://idp.cli.test';
const GITHUB = 'https://mcp.cli.test/github';
const AGENT = 'spiffe://ex.test/agent/assistant';
const P12_PASSWORD = 'correct horse battery staple';

let b: CliBroker;
let idpKey: CryptoKey;
let agentDir: string;

const idToken = (sub = 'alice') =>
  new SignJWT({ groups: ['eng'], sid: 'session-1' }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(IDP).setAudience('writ').setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(idpKey);

/** A fresh join token for the entry with this SPIFFE ID, through the CLI. */
const joinToken = async (spiffeId: string) => (await writ(['join-token', 'create', '--spiffe-id', spiffeId, '-o', 'json'], b.env)).json().token as string;

const publicKeyOf = (pem: string) => createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' });

beforeAll(async () => {
  const idp = await generateKeyPair('ES256');
  idpKey = idp.privateKey as CryptoKey;
  const jwk = { ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256' };
  b = await startCliBroker((work) => {
    writeFileSync(join(work, 'idp.json'), JSON.stringify({ keys: [jwk] }));
    return {
      WRIT_TRUST_DOMAIN: 'ex.test',
      WRIT_IDENTITY_PROVIDERS: JSON.stringify([{ issuer: IDP, jwks_file: join(work, 'idp.json'), audience: 'writ', algorithms: ['ES256'] }]),
    };
  });
  agentDir = join(b.work, 'agent');
  const resource = await httpsRequest(`${b.broker.apiUrl}/v1/admin/resources`, {
    ca: readFileSync(b.caFile, 'utf8'),
    method: 'POST',
    headers: { authorization: `Bearer ${b.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      uri: GITHUB,
      spiffe_id: 'spiffe://ex.test/mcp/github',
      tools: [
        { name: 'search', actions: ['read'], classification: 'internal' },
        { name: 'delete_repo', actions: ['delete'], classification: 'restricted' },
      ],
    }),
  });
  expect(resource.status).toBe(201);
  await writ(['entry', 'create', '--spiffe-id', AGENT, '--owner', 'platform'], b.env);
  await writ(['entry', 'create', '--spiffe-id', 'spiffe://ex.test/ops/admin', '--admin'], b.env);
});

afterAll(async () => {
  await b?.stop();
});

describe('writ attest: a local key, a CSR, and the SVID files', () => {
  it('writes key.pem (0600), svid.pem and bundle.pem; the SVID verifies against the bundle and matches the key', async () => {
    const run = await writ(['attest', '--join-token', await joinToken(AGENT), '--out', agentDir, '-o', 'json'], b.anonymous);
    expect(run.code).toBe(0);
    expect(run.json()).toEqual({
      spiffe_id: AGENT,
      expires_at: expect.any(String),
      files: { bundle: join(agentDir, 'bundle.pem'), key: join(agentDir, 'key.pem'), svid: join(agentDir, 'svid.pem') },
    });
    expect(statSync(join(agentDir, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(agentDir).mode & 0o077).toBe(0);
    expect(openssl(['verify', '-CAfile', 'bundle.pem', 'svid.pem'], { cwd: agentDir })).toContain('svid.pem: OK');
    const leaf = new X509Certificate(readFileSync(join(agentDir, 'svid.pem')));
    expect(leaf.subjectAltName).toContain(`URI:${AGENT}`);
    expect(leaf.publicKey.export({ type: 'spki', format: 'pem' })).toBe(publicKeyOf(readFileSync(join(agentDir, 'key.pem'), 'utf8')));
    expect(run.stdout).not.toContain('PRIVATE KEY');
  });

  it('refuses to overwrite an SVID without --force, a spent join token (one line), and p12 without a password (usage)', async () => {
    const token = await joinToken(AGENT);
    expectRefused(await writ(['attest', '--join-token', token, '--out', agentDir], b.anonymous), /already holds an SVID .*--force/);
    const spent = join(b.work, 'spent');
    expect((await writ(['attest', '--join-token', token, '--out', spent], b.anonymous)).code).toBe(0); // the token was not used above
    const again = await writ(['attest', '--join-token', token, '--out', join(b.work, 'again')], b.anonymous);
    expectRefused(again, /\(40\d [a-z-]+\)$/m);
    expect(again.stderr).not.toContain(token);
    expectUsage(await writ(['attest', '--join-token', token, '--out', join(b.work, 'p'), '--format', 'p12'], b.anonymous), 'writ attest', /needs a password/);
    expectUsage(await writ(['attest', '--out', join(b.work, 'p')], b.anonymous), 'writ attest', /--join-token or --join-token-file/);
    expectUsage(await writ(['attest', '--join-token', token, '--out', join(b.work, 'p'), '--format', 'jks'], b.anonymous), 'writ attest', /Allowed choices are pem, p12/);
    // No trust for the broker's certificate: one line that says what to do.
    expectRefused(await writ(['attest', '--join-token', token, '--out', join(b.work, 'p')], { WRIT_SERVER: b.broker.apiUrl }), /not trusted .*--ca/, 3);
  });

  it('with --format p12 also writes a password-protected svid.p12 that OpenSSL 3 reads without -legacy', async () => {
    const dir = join(b.work, 'p12');
    const tokenFile = join(b.work, 'join.token');
    writeFileSync(tokenFile, `${await joinToken(AGENT)}\n`);
    const passwordFile = join(b.work, 'p12.pass');
    writeFileSync(passwordFile, `${P12_PASSWORD}\n`);
    const run = await writ(['attest', '--join-token-file', tokenFile, '--out', dir, '--format', 'p12', '--p12-password-file', passwordFile], b.anonymous);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^p12 +.*svid\.p12$/m);
    expect(run.stdout + run.stderr).not.toContain(P12_PASSWORD);
    const p12 = join(dir, 'svid.p12');
    expect(statSync(p12).mode & 0o777).toBe(0o600);

    const info = execFileSync('openssl', ['pkcs12', '-info', '-nokeys', '-in', p12, '-passin', `pass:${P12_PASSWORD}`], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    expect(info).toContain(`friendlyName: ${AGENT}`);
    expect((info.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length).toBeGreaterThanOrEqual(2); // the SVID and the bundle's CA
    // -info describes the structure on stderr and prints the contents on stdout.
    const read = spawnSync('openssl', ['pkcs12', '-info', '-in', p12, '-passin', `pass:${P12_PASSWORD}`, '-nodes'], { encoding: 'utf8' });
    expect(read.status).toBe(0);
    const all = read.stderr + read.stdout;
    expect(all).toMatch(/Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256/);
    expect(all).toMatch(/MAC: sha256/);
    const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(all)![0];
    expect(publicKeyOf(key)).toBe(publicKeyOf(readFileSync(join(dir, 'key.pem'), 'utf8')));
    expect(() => openssl(['pkcs12', '-info', '-nokeys', '-in', p12, '-passin', 'pass:wrong'])).toThrow(/mac verify failure|invalid password/i);

    // Renewal keeps the PKCS#12 current (and needs its password again).
    expectUsage(await writ(['svid', 'renew', '--dir', dir], b.anonymous), 'writ svid renew', /needs a password/);
    const before = new X509Certificate(readFileSync(join(dir, 'svid.pem'))).serialNumber;
    expect((await writ(['svid', 'renew', '--dir', dir], { ...b.anonymous, WRIT_P12_PASSWORD: P12_PASSWORD })).code).toBe(0);
    const after = new X509Certificate(readFileSync(join(dir, 'svid.pem'))).serialNumber;
    expect(after).not.toBe(before);
    expect(openssl(['pkcs12', '-nokeys', '-clcerts', '-in', p12, '-passin', `pass:${P12_PASSWORD}`])).toContain(readFileSync(join(dir, 'svid.pem'), 'utf8').split('-----END CERTIFICATE-----')[0]!.split('\n').slice(1, 3).join('\n'));
  });
});

describe('writ svid renew and writ jwt-svid, over mTLS with the SVID directory', () => {
  it('renews with a new key, rewriting the files in place (no temporary files left)', async () => {
    const oldKey = readFileSync(join(agentDir, 'key.pem'), 'utf8');
    const oldSerial = new X509Certificate(readFileSync(join(agentDir, 'svid.pem'))).serialNumber;
    const run = await writ(['svid', 'renew', '--dir', agentDir], b.anonymous);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^spiffe_id +${AGENT}$`, 'm'));
    const newKey = readFileSync(join(agentDir, 'key.pem'), 'utf8');
    expect(newKey).not.toBe(oldKey);
    const leaf = new X509Certificate(readFileSync(join(agentDir, 'svid.pem')));
    expect(leaf.serialNumber).not.toBe(oldSerial);
    expect(leaf.publicKey.export({ type: 'spki', format: 'pem' })).toBe(publicKeyOf(newKey));
    expect(statSync(join(agentDir, 'key.pem')).mode & 0o777).toBe(0o600);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(agentDir).sort()).toEqual(['bundle.pem', 'key.pem', 'svid.pem']);
    expectRefused(await writ(['svid', 'renew', '--dir', join(b.work, 'nowhere')], b.anonymous), /cannot read the trust bundle .*ENOENT/);
  });

  it('gets a JWT-SVID for the audiences given', async () => {
    const run = await writ(['jwt-svid', '--dir', agentDir, '--audience', 'https://a.test', '--audience', 'https://b.test', '-o', 'json'], b.anonymous);
    expect(run.json()).toMatchObject({ spiffe_id: AGENT, token: expect.any(String) });
    expect(decodeJwt(run.json().token)).toMatchObject({ sub: AGENT, aud: ['https://a.test', 'https://b.test'] });
    expectUsage(await writ(['jwt-svid', '--dir', agentDir], b.anonymous), 'writ jwt-svid', /--audience/);
  });
});

describe('writ exchange, task end, revoke, leases', () => {
  let subjectFile: string;

  beforeAll(async () => {
    const policy = join(b.work, 'writ.cedar');
    writeFileSync(policy, '@id("eng-read-low")\npermit (principal, action == Writ::Action::"read", resource is Writ::Tool)\nwhen { principal.groups.contains("eng") && context.classification_level <= 1 };\n');
    expect((await writ(['policy', 'set', policy], b.env)).code).toBe(0);
    subjectFile = join(b.work, 'id-token');
    writeFileSync(subjectFile, `${await idToken()}\n`);
  });

  it('exchanges the user\'s token for a task token granting only what policy allows', async () => {
    const table = await writ(['exchange', '--dir', agentDir, '--subject-token', subjectFile, '--resource', GITHUB, '--tool', 'search:read', '--tool', 'delete_repo:delete'], b.anonymous);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^access_token +eyJ[\w-]+\.[\w-]+\.[\w-]+$/m);
    expect(table.stdout).toMatch(/^expires_in +300s$/m);
    expect(table.stdout).toMatch(/^task_id +[0-9a-f-]{36}$/m);
    expect(table.stdout).toMatch(/^granted +search:read$/m);
    expect(table.stdout).toMatch(/^refused +delete_repo:delete$/m);
    expect(table.stdout).not.toContain(readFileSync(subjectFile, 'utf8').trim());

    const json = await writ(['exchange', '--dir', agentDir, '--subject-token', '-', '--resource', GITHUB, '--tool', 'search:read', '-o', 'json'], b.anonymous, { input: readFileSync(subjectFile, 'utf8') });
    expect(json.json()).toMatchObject({ token_type: 'Bearer', expires_in: 300, refused: [], authorization_details: [{ type: 'mcp_tool', tools: ['search'], actions: ['read'], data_classification: 'internal' }] });
    expect(decodeJwt(json.json().access_token)).toMatchObject({ sub: 'alice', aud: GITHUB, client_id: AGENT, task_id: json.json().task_id });

    const refused = await writ(['exchange', '--dir', agentDir, '--subject-token', subjectFile, '--resource', GITHUB, '--tool', 'delete_repo:delete'], b.anonymous);
    expectRefused(refused, /\(400 access_denied\)$/m);
    expectRefused(await writ(['exchange', '--dir', agentDir, '--subject-token', subjectFile, '--resource', 'https://elsewhere.test', '--tool', 'search:read'], b.anonymous), /\(400 invalid_target\)$/m);
    expectUsage(await writ(['exchange', '--dir', agentDir, '--subject-token', subjectFile, '--resource', GITHUB, '--tool', 'search'], b.anonymous), 'writ exchange', /NAME:ACTION/);
  });

  it('ends a task (its tokens are revoked), revokes by token, task and user, with a dry run first, and lists leases', async () => {
    const tokenFile = join(b.work, 'access.token');
    const first = await writ(['exchange', '--dir', agentDir, '--subject-token', subjectFile, '--resource', GITHUB, '--tool', 'search:read', '--token-file', tokenFile, '-o', 'json'], b.anonymous);
    expect(first.json().access_token).toBeUndefined();
    expect(first.json().access_token_file).toBe(tokenFile);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const jti = decodeJwt(readFileSync(tokenFile, 'utf8').trim()).jti!;
    const task = first.json().task_id as string;
    const accessToken = readFileSync(tokenFile, 'utf8').trim();

    // RFC 7662 as the admin: active, and the claims; the token itself is never printed.
    const live = await writ(['introspect', tokenFile, '-o', 'json'], b.env);
    expect(live.json()).toMatchObject({ active: true, token_type: 'Bearer', jti, sub: 'alice', aud: GITHUB, client_id: AGENT, task_id: task });
    const liveTable = await writ(['introspect', '-'], b.env, { input: `${accessToken}\n` });
    expect(liveTable.code).toBe(0);
    expect(liveTable.stdout).toMatch(/^active +true$/m);
    expect(liveTable.stdout).toMatch(new RegExp(`^jti +${jti}$`, 'm'));
    expect(liveTable.stdout).toMatch(/^exp +\d+ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/m);
    for (const r of [live, liveTable]) expect(r.stdout + r.stderr).not.toContain(accessToken);
    // Over mTLS with a connector's SVID: not the token's resource, so it learns nothing (RFC 7662 §4).
    expect((await writ(['introspect', tokenFile, '--dir', agentDir, '-o', 'json'], b.anonymous)).json()).toEqual({ active: false });
    expectUsage(await writ(['introspect', tokenFile], b.anonymous), 'writ introspect', /admin commands need a credential/);
    expectUsage(await writ(['introspect', '-'], b.env, { input: '\n' }), 'writ introspect', /no token in standard input/);
    expectRefused(await writ(['introspect', join(b.work, 'no.token')], b.env), /cannot read the token file/);

    const dry = await writ(['revoke', '--jti', jti, '--dry-run', '-o', 'json'], b.env);
    expect(dry.json()).toMatchObject({ dry_run: true, leases: 1, sample: [{ jti, task_id: task }], byUser: { [`${IDP} alice`]: 1 } });
    const dryTable = await writ(['revoke', '--issuer', IDP, '--user', 'alice', '--dry-run'], b.env);
    expect(dryTable.stdout).toMatch(/^dry run: would revoke \d+ leases$/m);
    expect(dryTable.stdout).toMatch(/^USER +LEASES$/m);

    const leases = await writ(['leases', '--task', task, '-o', 'json'], b.env);
    expect(leases.json().leases).toEqual([expect.objectContaining({ jti, kind: 'access-token', subject: 'alice', revoked_at: null })]);

    expect(await writ(['task', 'end', task, '--dir', agentDir], b.anonymous)).toMatchObject({ code: 0, stdout: expect.stringMatching(/^revoked +1$/m) });
    expect(await writ(['introspect', tokenFile], b.env)).toMatchObject({ code: 0, stdout: 'active  false\n' });
    const table = await writ(['leases', '--task', task, '--status', 'revoked'], b.env);
    expect(table.stdout).toMatch(new RegExp(`^${jti} +access-token +${AGENT} +alice .* revoked$`, 'm'));
    expectRefused(await writ(['task', 'end', '00000000-0000-4000-8000-000000000000', '--dir', agentDir], b.anonymous), /\(404 task-not-found\)$/m);

    const second = await writ(['exchange', '--dir', agentDir, '--subject-token', subjectFile, '--resource', GITHUB, '--tool', 'search:read', '-o', 'json'], b.anonymous);
    expect((await writ(['revoke', '--task', second.json().task_id, '--reason', 'done', '-o', 'json'], b.env)).json()).toEqual({ revoked: 1 });
    expect((await writ(['revoke', '--issuer', IDP, '--user', 'alice', '--reason', 'offboarded'], b.env)).stdout).toMatch(/^revoked \d+ leases?\n$/);
    // The user is revoked from now on: their current ID token buys nothing more.
    expectRefused(await writ(['exchange', '--dir', agentDir, '--subject-token', subjectFile, '--resource', GITHUB, '--tool', 'search:read'], b.anonymous), /revoked .*\(400 invalid_grant\)$/m);
  });
});

describe('admin over mTLS with --svid-dir, and the kill switch', () => {
  it('uses an admin SVID for admin commands; a connector\'s SVID is refused (403)', async () => {
    const adminDir = join(b.work, 'admin');
    expect((await writ(['attest', '--join-token', await joinToken('spiffe://ex.test/ops/admin'), '--out', adminDir], b.anonymous)).code).toBe(0);
    const list = await writ(['--svid-dir', adminDir, 'entry', 'list', '-o', 'json'], { WRIT_SERVER: b.broker.apiUrl });
    expect(list.json().entries.map((e: { spiffe_id: string }) => e.spiffe_id)).toContain(AGENT);
    expectRefused(await writ(['entry', 'list', '--svid-dir', agentDir], { WRIT_SERVER: b.broker.apiUrl }), /is not an admin \(403 forbidden\)/);
  });

  it('disables the connector: its SVID stops working at once', async () => {
    const res = await writ(['connector', 'disable', AGENT, '--reason', 'compromised', '-o', 'json'], b.env);
    expect(res.json()).toMatchObject({ spiffe_id: AGENT, entries_disabled: 1 });
    expect(res.json().leases_revoked).toBeGreaterThanOrEqual(1);
    expectRefused(await writ(['svid', 'renew', '--dir', agentDir], b.anonymous), /\(401 unauthenticated\)$/m);
    expect(existsSync(join(agentDir, 'key.pem'))).toBe(true); // a refused renewal leaves the files as they were
  });
});
