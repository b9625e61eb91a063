import type { AuditAppend } from '../audit';
import type { PreparedRotation } from '../ca/rotator';

/** What prepares a CA rotation now (the server rotator). */
export interface CaRotationSource {
  rotateCa(overlap?: number): Promise<PreparedRotation & { spiffeSequence: number }>;
}

/**
 * An operator's request to rotate the CA: the authorities are prepared (and audited as
 * `ca.rotation_prepared` by the CA), then the request itself is recorded with who asked.
 */
export class CaRotationRequests {
  constructor(
    private readonly rotator: CaRotationSource,
    private readonly audit: AuditAppend,
  ) {}

  async rotate(overlap: number | undefined, actor: string): Promise<PreparedRotation & { spiffeSequence: number }> {
    const prepared = await this.rotator.rotateCa(overlap);
    await this.audit({ type: 'ca.rotation_requested', actor, details: { overlap: overlap ?? null } });
    return prepared;
  }
}
