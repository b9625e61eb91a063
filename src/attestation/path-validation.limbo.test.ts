import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EKU, parseCertificate, validateCertificatePath } from './path-validation';

// The C2SP/x509-limbo cases for the features x509pop's path validation implements
// (test/fixtures/x509-limbo/README.md says which, from which commit, and why the rest
// are left out). Each case asserts x509-limbo's expected result, or, for the cases
// listed in deviations.json, the result Writ deliberately gives instead, with its reason.

interface LimboCase {
  readonly id: string;
  readonly group: string;
  readonly description: string;
  readonly validation_kind: 'SERVER' | 'CLIENT';
  readonly validation_time: string | null;
  readonly extended_key_usage: readonly string[];
  readonly max_chain_depth: number | null;
  readonly expected_result: 'SUCCESS' | 'FAILURE';
  readonly trusted_certs: readonly string[];
  readonly untrusted_intermediates: readonly string[];
  readonly peer_certificate: string;
}
type Result = LimboCase['expected_result'];

const dir = join(__dirname, '..', '..', 'test', 'fixtures', 'x509-limbo');
const { testcases } = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { testcases: LimboCase[] };
const deviations = JSON.parse(readFileSync(join(dir, 'deviations.json'), 'utf8')) as Record<string, { writ: Result; reason: string }>;

const cert = (pem: string) => parseCertificate(new X509Certificate(pem).raw);

/** Writ's answer for a case: the validator with x509-limbo's trust anchors, intermediates, time, purpose and depth. */
function writDecides(t: LimboCase): { result: Result; reason: string } {
  let leaf;
  try {
    leaf = cert(t.peer_certificate);
  } catch (err) {
    return { result: 'FAILURE', reason: `the peer certificate cannot be parsed: ${(err as Error).message}` };
  }
  const purpose = t.validation_kind === 'CLIENT' || t.extended_key_usage.includes('clientAuth') ? EKU.clientAuth : EKU.serverAuth;
  const outcome = validateCertificatePath(leaf, {
    presented: t.untrusted_intermediates.map(cert),
    configured: [],
    anchors: t.trusted_certs.map(cert),
    time: t.validation_time === null ? new Date() : new Date(t.validation_time),
    purpose,
    // x509-limbo's depth counts intermediates; Writ's bound counts the whole path.
    ...(t.max_chain_depth === null ? {} : { maxCertificates: t.max_chain_depth + 2 }),
  });
  return outcome.ok ? { result: 'SUCCESS', reason: '' } : { result: 'FAILURE', reason: outcome.reason };
}

describe('RFC 5280 §6 path validation against C2SP/x509-limbo', () => {
  it('has the fixture it was written for, and every deviation names a vendored case', () => {
    expect(testcases.length).toBeGreaterThanOrEqual(100);
    const ids = new Set(testcases.map((t) => t.id));
    for (const id of Object.keys(deviations)) expect(ids).toContain(id);
  });

  const groups = [...new Set(testcases.map((t) => t.group))];
  describe.each(groups)('%s', (group) => {
    const cases = testcases.filter((t) => t.group === group);
    it.each(cases.filter((t) => !deviations[t.id]).map((t) => [t.id, t] as const))('%s: as x509-limbo expects', (_, t) => {
      const { result, reason } = writDecides(t);
      expect({ result, reason }).toEqual({ result: t.expected_result, reason: expect.any(String) });
    });
    const different = cases.filter((t) => deviations[t.id]);
    if (different.length > 0) {
      it.each(different.map((t) => [t.id, t] as const))('%s: Writ decides differently, deliberately', (_, t) => {
        const deviation = deviations[t.id]!;
        expect(deviation.writ).not.toBe(t.expected_result);
        expect(writDecides(t).result).toBe(deviation.writ);
      });
    }
  });
});
