import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { openssl } from '../../test/support/openssl';
import { MAX_CSR_PEM_LENGTH, parseCsr } from './csr';
import { CsrRejected } from './errors';

// A CSR is the body of POST /v1/attest and /v1/svid/renew: whatever the bytes, parseCsr
// returns a verified key or throws CsrRejected (a 400 naming the rule), never anything else.

const RUNS = Number(process.env.FC_RUNS ?? 300);
let dir: string;
const real: Record<string, string> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'writ-csr-prop-'));
  const make = (name: string, keyArgs: string[]) => {
    openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=requester'], { cwd: dir });
    real[name] = readFileSync(join(dir, `${name}.csr`), 'utf8');
  };
  make('p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  make('ed25519', ['-newkey', 'ed25519']);
  make('rsa', ['-newkey', 'rsa:2048']);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', 'e3.key'], { cwd: dir });
  openssl(['req', '-new', '-key', 'e3.key', '-out', 'e3.csr', '-subj', '/CN=requester'], { cwd: dir });
  real.e3 = readFileSync(join(dir, 'e3.csr'), 'utf8');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const toPem = (der: Uint8Array, label = 'CERTIFICATE REQUEST') => `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
const derOf = (pem: string) => new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));

/** Runs parseCsr; answers 'accepted' or the CsrRejected code (any other outcome fails the property). */
async function outcome(pem: string): Promise<string> {
  try {
    const csr = await parseCsr(pem);
    expect(['P-256', 'P-384', 'Ed25519', 'RSA']).toContain(csr.keyType);
    return 'accepted';
  } catch (err) {
    expect(err).toBeInstanceOf(CsrRejected);
    expect((err as CsrRejected).status).toBe(400);
    expect((err as Error).message.length).toBeGreaterThan(0);
    return (err as CsrRejected).code;
  }
}

describe('parseCsr (RFC 2986, RFC 7468), properties', () => {
  it('refuses arbitrary text as csr-invalid', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ maxLength: 300 }).map((s) => `-----BEGIN CERTIFICATE REQUEST-----\n${s}\n-----END CERTIFICATE REQUEST-----\n`)), async (text) => {
        expect(await outcome(text)).toBe('csr-invalid');
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses arbitrary bytes in a well-formed PEM block as csr-invalid', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.constantFrom('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'), async (bytes, label) => {
        expect(await outcome(toPem(bytes, label))).toBe('csr-invalid');
      }),
      { numRuns: RUNS },
    );
  });

  it('a real CSR with any octet changed, dropped or appended is refused (or, if still valid DER, verified)', async () => {
    const mutation = fc.record({
      csr: fc.constantFrom('p256', 'ed25519', 'rsa'),
      at: fc.nat(),
      how: fc.constantFrom('flip', 'drop', 'insert', 'truncate', 'append'),
      octet: fc.integer({ min: 0, max: 255 }),
    });
    await fc.assert(
      fc.asyncProperty(mutation, async ({ csr, at, how, octet }) => {
        const der = derOf(real[csr]!);
        const i = at % der.length;
        const mutated =
          how === 'flip' ? Uint8Array.from(der, (b, j) => (j === i ? b ^ (octet || 1) : b))
          : how === 'drop' ? Uint8Array.from([...der.subarray(0, i), ...der.subarray(i + 1)])
          : how === 'insert' ? Uint8Array.from([...der.subarray(0, i), octet, ...der.subarray(i)])
          : how === 'truncate' ? der.subarray(0, i)
          : Uint8Array.from([...der, octet]);
        expect(['accepted', 'csr-invalid', 'unsupported-key', 'key-too-weak']).toContain(await outcome(toPem(mutated)));
      }),
      { numRuns: RUNS },
    );
  });

  it('a real CSR stays valid with white space around its PEM block (RFC 7468 §2); text before it is refused', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('p256', 'ed25519', 'rsa'), fc.constantFrom(' ', '\n', '\r\n', '\t'), fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim() !== ''), async (csr, ws, junk) => {
        expect(await outcome(`${ws}${real[csr]!}${ws}`)).toBe('accepted');
        expect(await outcome(`${junk}${real[csr]!}`)).toBe('csr-invalid');
      }),
      { numRuns: Math.min(RUNS, 100) },
    );
  });

  it('refuses an RSA key with public exponent 3, naming it, and accepts 65537', async () => {
    await expect(parseCsr(real.e3!)).rejects.toMatchObject({ code: 'key-too-weak', message: 'RSA public exponent 3 is not allowed; use 65537' });
    await expect(parseCsr(real.rsa!)).resolves.toMatchObject({ keyType: 'RSA', rsaModulusBits: 2048 });
  });

  it('refuses text longer than the cap before decoding it', async () => {
    expect(await outcome(real.p256!.padEnd(MAX_CSR_PEM_LENGTH + 1, '\n'))).toBe('csr-invalid');
  });
});
