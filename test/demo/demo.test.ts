import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');

/** Runs `node demo/run.mjs` (what `npm run demo` runs after building) and collects its output. */
function runDemo(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['demo/run.mjs'], { cwd: ROOT, env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

describe('the five-minute demo (npm run demo)', () => {
  let run: { code: number | null; stdout: string; stderr: string };
  beforeAll(async () => {
    run = await runDemo();
  }, 120_000);

  const section = (n: number) => run.stdout.split(/\n(?=\d+\. )/).find((s) => s.startsWith(`${n}. `)) ?? '';

  it('runs to the end and exits 0', () => {
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Done. Everything above ran for real');
  });

  it('trusts a real OpenID Provider through discovery for the users\' ID tokens', () => {
    expect(section(1)).toMatch(/✔ identity provider: http:\/\/127\.0\.0\.1:\d+ \(oidc-provider\), its keys found by OpenID Connect Discovery/);
  });

  it('issues the connector an SVID through a join token', () => {
    expect(section(2)).toMatch(/✔ SVID issued: spiffe:\/\/demo\.writ\/agent\/assistant, serial [0-9a-f]{12}…/);
  });

  it('grants each user only what policy allows, lists only granted tools, and refuses the rest', () => {
    const alice = section(4);
    expect(alice).toContain('✔ task token granted for list_issues:read, search_related:read only');
    expect(alice).toContain('✔ tools/list shows list_issues, search_related\n');
    expect(alice).toContain('✔ list_issues: 1 open issue(s), for alice via spiffe://demo.writ/agent/assistant');
    expect(alice).toContain('✘ create_issue: refused (insufficient_scope:');
    expect(alice).toContain('✘ delete_repo: refused (insufficient_scope:');
    const bob = section(5);
    expect(bob).toContain('✔ task token granted for create_issue:write, list_issues:read, search_related:read only');
    expect(bob).toContain('✔ create_issue: opened #2 "Reported by bob" for bob');
    expect(bob).toContain('✘ delete_repo: refused (insufficient_scope:');
  });

  it('steps up within the task when policy allows the added tool, and not when it does not', () => {
    const stepUp = section(6);
    expect(stepUp).toMatch(/✔ bob: task [0-9a-f]{8}… begins with list_issues\n/);
    expect(stepUp).toContain('✔ bob: the server asked for create_issue:write; policy granted it in the same task (same task)');
    expect(stepUp).toContain('✔ bob: create_issue: opened #3 "Stepped up by bob" for bob');
    expect(stepUp).toContain('✘ alice: the server asked for create_issue:write; policy refused it (granted only list_issues)');
    expect(stepUp).toContain('✘ alice: create_issue: refused (insufficient_scope:');
  });

  it('refuses a chained call without a delegate permit, and a call after the task ended', () => {
    expect(section(7)).toContain('✘ search_related: downstream refused: access_denied:');
    expect(section(8)).toMatch(/✔ task ended: 1 token\(s\) revoked/);
    expect(section(8)).toContain('✘ list_issues after the task ended: refused (invalid_token:');
  });

  it('governs every call: no egress after a restricted read across servers, and delete_repo once an approver approved', () => {
    const governed = section(9);
    expect(governed).toContain('✔ alice, mail server: send_email sent to bob@example.com');
    expect(governed).toContain('✔ alice, records server: read_record (restricted) → record 7: salary band E');
    expect(governed).toContain('✘ alice, mail server: send_email refused (-32001 send_email: the policy does not permit it)');
    expect(governed).toMatch(/✔ audit #\d+: denied by no-egress-after-restricted-read, after read_record on https:\/\/127\.0\.0\.1:\d+\/records/);
    expect(governed).toMatch(/✔ bob, repos server: delete_repo waits for an approver \(input_required, .*\/v1\/approvals\/[0-9a-f]{8}…\)/);
    expect(governed).toMatch(/✔ carol \(security\) approves it: approved, until /);
    expect(governed).toContain('✔ bob, repos server: delete_repo retried: deleted the repository');
  });

  it('posts to the SaaS for alice through the token vault: a link first, then her note, the released token revoked when the task ends', () => {
    const vault = section(10);
    expect(vault).toMatch(/✔ provider "notes" registered: Acme Notes at http:\/\/localhost:\d+ \(oidc-provider\)/);
    expect(vault).toMatch(/✔ alice, post_note: Writ has no Acme Notes grant of hers yet: input_required, a link for her \(https:\/\/localhost:\d+\/v1\/vault\/links\/…\)/);
    expect(vault).toMatch(/✔ alice linked her account: Writ keeps the grant \(notes:write\) for alice at http:\/\/127\.0\.0\.1:\d+/);
    expect(vault).toMatch(/✔ alice, post_note retried: posted to Acme Notes as alice \(a token for notes:write, \d+ s\)/);
    expect(vault).toContain('✔ Acme Notes recorded "Login page is slow: see #1" by alice, from Writ\'s client writ-vault');
    expect(vault).toContain('✔ task ended: the Acme Notes token released to it revoked at Acme Notes (RFC 7009)');
  });

  it('shows audit rows naming the user and the connector, and a verified chain', () => {
    const audit = section(11);
    expect(audit).toMatch(/✔ #\d+ token\.issued +user alice via spiffe:\/\/demo\.writ\/agent\/assistant/);
    expect(audit).toMatch(/✔ #\d+ token\.issued +user bob via spiffe:\/\/demo\.writ\/agent\/assistant/);
    expect(audit).toMatch(/✔ #\d+ token\.refused user alice via spiffe:\/\/demo\.writ\/mcp\/issues \(access_denied\)/);
    expect(audit).toMatch(/✔ hash chain intact over \d+ events/);
    expect(audit).toMatch(/✔ each names the person as their identity provider does: subject and subject_issuer http:\/\/127\.0\.0\.1:\d+\n/);
  });
});
