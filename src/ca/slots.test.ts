import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock';
import { systemRandom } from '../core/random';
import { loadOrCreateCertificateAuthority, loadOrCreateJwtSigningKey } from './store';
import { ACTIVATING_MARKER, activatePreparedSlot, loadActiveSlot, loadPreparedSlot, recoverInterruptedActivation, writePreparedSlot } from './slots';

const opts = (dir: string) => ({ dir, trustDomain: 'writ.local', caTtl: 86400, clock: new ManualClock(), random: systemRandom });

async function withActiveAndPrepared() {
  const dir = mkdtempSync(join(tmpdir(), 'writ-slots-'));
  await loadOrCreateCertificateAuthority(opts(dir));
  await loadOrCreateJwtSigningKey({ dir });
  const prepared = await writePreparedSlot(opts(dir));
  return { dir, prepared };
}

describe('CA key slots (prepared → active)', () => {
  it('activation makes the prepared authorities the active files', async () => {
    const { dir, prepared } = await withActiveAndPrepared();
    activatePreparedSlot(dir);
    const active = await loadActiveSlot(opts(dir));
    expect(active.ca.certificate.serialNumber).toBe(prepared.ca.certificate.serialNumber);
    expect(active.jwtKey.kid).toBe(prepared.jwtKey.kid);
    expect(await loadPreparedSlot(opts(dir))).toBeUndefined();
    expect(existsSync(join(dir, ACTIVATING_MARKER))).toBe(false);
  });

  it('a start after a crash midway through activation finishes it', async () => {
    const { dir, prepared } = await withActiveAndPrepared();
    writeFileSync(join(dir, ACTIVATING_MARKER), '1');
    renameSync(join(dir, 'ca.next.key'), join(dir, 'ca.key')); // the crash came after the first rename
    expect(recoverInterruptedActivation(dir)).toBe(true);
    const active = await loadActiveSlot(opts(dir));
    expect(active.ca.certificate.serialNumber).toBe(prepared.ca.certificate.serialNumber);
    expect(active.jwtKey.kid).toBe(prepared.jwtKey.kid);
    expect(recoverInterruptedActivation(dir)).toBe(false);
  });

  it('a prepare that stopped midway leaves nothing behind (it was never published)', async () => {
    const { dir } = await withActiveAndPrepared();
    renameSync(join(dir, 'ca.next.crt'), join(dir, 'elsewhere.crt'));
    expect(await loadPreparedSlot(opts(dir))).toBeUndefined();
    expect(existsSync(join(dir, 'ca.next.key'))).toBe(false);
    expect(existsSync(join(dir, 'jwt-signing.next.key'))).toBe(false);
    expect(readFileSync(join(dir, 'ca.key'), 'utf8')).toMatch(/PRIVATE KEY/);
  });
});
