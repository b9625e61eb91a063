import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Random } from '../../src/core/random';
import type { McpToolDetail } from '../../src/tokens/authorization-details';
import type { AccessTokenSigningKey, LifetimeBounds, MintFields, MintInput } from '../../src/tokens/sign';

/** Access-token fixtures for the sign and verify tests: a connector certificate made by openssl, ES256 keys, a mint input. */

export const T0 = new Date('2026-11-27T12:00:00.750Z'); // not on a whole second: iat floors
export const T0S = Math.floor(T0.getTime() / 1000);
export const at = (s: number) => new Date((T0S + s) * 1000);
export const ISSUER = 'https://writ.example.com';
export const CONNECTOR = 'spiffe://writ.local/connector/github';
export const RESOURCE = 'https://mcp.example.com/github';

export const granted: McpToolDetail[] = [{ type: 'mcp_tool', tools: ['create_issue'], actions: ['write'], data_classification: 'internal' }];

export const fixedRandom = (uuid = '0b7e9a2c-41f6-4d5e-9b39-1c2d3e4f5a6b'): Random => ({ bytes: (n) => new Uint8Array(n), uuid: () => uuid });

export function signingKey(kid: string): { key: AccessTokenSigningKey; publicKey: KeyObject } {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: { kid, alg: 'ES256', privateKey: pair.privateKey }, publicKey: pair.publicKey };
}

/** The connector's X.509-SVID as openssl makes it (`svid.pem` in `dir`), and its DER. */
export function connectorCertificate(prefix: string): { dir: string; certDer: Uint8Array } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'svid.key'), '-out', join(dir, 'svid.pem'), '-days', '1',
    '-subj', '/CN=github', '-addext', `subjectAltName=URI:${CONNECTOR}`,
  ], { stdio: 'pipe' });
  return { dir, certDer: new Uint8Array(new X509Certificate(readFileSync(join(dir, 'svid.pem'), 'utf8')).raw) };
}

export const bounds = (over: Partial<LifetimeBounds> = {}): LifetimeBounds => ({
  maximum: 3600,
  certificateNotAfter: at(86400),
  subjectTokenExpiresAt: at(3600),
  ...over,
});

/** What the exchange mints for alice through the connector, bound to `clientCertificate`. */
export const mintInput = (clientCertificate: Uint8Array, over: Partial<MintFields> = {}): MintInput => ({
  issuer: ISSUER,
  subject: 'alice@example.com',
  audience: RESOURCE,
  clientId: CONNECTOR,
  clientCertificate,
  authorizationDetails: granted,
  taskId: 'task-42',
  sid: 'session-1',
  lifetime: bounds(),
  ...over,
});
