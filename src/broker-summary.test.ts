import { showStartupSummary, startupSummary, type StartupSummary } from './broker-summary';

const base: StartupSummary = {
  apiUrl: 'https://127.0.0.1:8443',
  opsUrl: 'http://127.0.0.1:9090',
  bundleUrl: 'https://127.0.0.1:8443/v1/bundle',
  trustDomain: 'writ.local',
  policy: undefined,
  identityProviders: 0,
  signalTransmitters: 0,
  adminTokenFile: undefined,
};

describe('the start-up summary', () => {
  it('says that nothing is allowed without a policy or an identity provider', () => {
    const text = startupSummary(base);
    expect(text).toContain('policy:  no policy: every exchange is denied (set WRIT_POLICY_FILE)');
    expect(text).toContain('identity providers: none: every exchange is refused (set WRIT_IDENTITY_PROVIDERS)');
    expect(text).toContain('  API:     https://127.0.0.1:8443\n  bundle:  https://127.0.0.1:8443/v1/bundle\n  ops:     http://127.0.0.1:9090/readyz, http://127.0.0.1:9090/metrics\n');
    expect(text).not.toContain('admin token');
    expect(text.endsWith('"Connect a workload" shows.\n')).toBe(true);
  });

  it('names the policy version in force, the providers and transmitters, and the token file', () => {
    const text = startupSummary({ ...base, policy: { version: '3', policies: 2 }, identityProviders: 1, signalTransmitters: 2, adminTokenFile: '/var/lib/writ/bootstrap-admin-token' });
    expect(text).toContain('policy:  version 3, 2 policies\n');
    expect(text).toContain('identity providers: 1\n');
    expect(text).toContain('signal transmitters: 2\n');
    expect(text).toContain('admin token: in /var/lib/writ/bootstrap-admin-token until its first use\n');
    expect(startupSummary({ ...base, policy: { version: '1', policies: 0 } })).toContain('version 1, 0 policies: every exchange is denied');
  });

  it('is written only to a TTY', () => {
    const written: string[] = [];
    expect(showStartupSummary({ isTTY: false, write: (t) => written.push(t) }, base)).toBe(false);
    expect(showStartupSummary({ write: (t) => written.push(t) }, base)).toBe(false);
    expect(written).toEqual([]);
    expect(showStartupSummary({ isTTY: true, write: (t) => written.push(t) }, base)).toBe(true);
    expect(written).toEqual([startupSummary(base)]);
  });
});
