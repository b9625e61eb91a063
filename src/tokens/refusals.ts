import type { AuditAppend } from '../audit';

/**
 * Records OAuth refusals that no token service decided (a body in the wrong media type, a
 * missing parameter, a client that did not authenticate): RFC 6749 §5.2 errors, audited as
 * `oauth.refused`. The token exchange records its own refusals, with its decisions.
 */
export class OAuthRefusals {
  constructor(private readonly audit: AuditAppend) {}

  /** Records the refusal; the refusal is answered all the same if the audit trail cannot be written. */
  async refused(endpoint: string, error: string): Promise<void> {
    await this.audit({ type: 'oauth.refused', details: { endpoint, error } }).catch(() => undefined);
  }
}
