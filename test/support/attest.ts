import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpsRequest } from './https';
import { openssl } from './openssl';

/** An X.509-SVID as PEM, with the key openssl made for it. */
export interface PemSvid {
  readonly cert: string;
  readonly key: string;
}

/** A connector attested with a join token: its SVID, the CSR it sent (for renewals with the same key) and its entry. */
export interface AttestedConnector extends PemSvid {
  readonly csr: string;
  readonly entryId: string;
}

/** Calls the broker's admin API as JSON; answers status and parsed body. */
export type AdminCall = (path: string, method: string, body?: unknown) => Promise<{ status: number; json: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * What a connector does on its first start, with tools Writ did not write: an admin registers
 * the entry and issues a join token; openssl makes the key and CSR in `dir`; POST /v1/attest.
 */
export async function attestWithJoinToken(opts: { apiUrl: string; ca: string; admin: AdminCall; spiffeId: string; dir: string; metadata?: Record<string, string> }): Promise<AttestedConnector> {
  const entry = await opts.admin('/v1/admin/entries', 'POST', { spiffe_id: opts.spiffeId, ...(opts.metadata && { metadata: opts.metadata }) });
  const token = await opts.admin('/v1/admin/join-tokens', 'POST', { entry_id: entry.json.id });
  const name = opts.spiffeId.replace(/\W/g, '_');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=x'], { cwd: opts.dir });
  const csr = readFileSync(join(opts.dir, `${name}.csr`), 'utf8');
  const res = await httpsRequest(`${opts.apiUrl}/v1/attest`, {
    ca: opts.ca,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ attestor: 'join_token', evidence: { token: token.json.token }, csr }),
  });
  if (entry.status !== 201 || res.status !== 201) throw new Error(`attestation of ${opts.spiffeId} failed: entry ${entry.status}, attest ${res.status} ${res.body}`);
  return { cert: JSON.parse(res.body).svid as string, key: readFileSync(join(opts.dir, `${name}.key`), 'utf8'), csr, entryId: entry.json.id as string };
}
