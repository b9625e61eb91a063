import { createPrivateKey, generateKeyPairSync, X509Certificate as NodeX509, type KeyObject, type JsonWebKey } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { calculateJwkThumbprint } from 'jose';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import { parseSpiffeId, spiffeIdOf } from '../spiffe/id';
import { CertificateAuthority } from './authority';
import { CaError } from './errors';
import { publishExclusive, readIfExists, removeStaleTemporaries } from './files';
import { exportPkcs8Pem, generateP256, importSigningKey, P256 } from './keys';
import { serialNumber, signingCaExtensions } from './templates';
import { x509 } from './x509';

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const JWT_KEY_FILE = 'jwt-signing.key';

/** The ES256 key that signs JWT-SVIDs and tokens. */
export interface JwtSigningKey {
  /** RFC 7638 JWK thumbprint of the public key. */
  readonly kid: string;
  readonly alg: 'ES256';
  readonly privateKey: KeyObject;
  readonly publicJwk: JsonWebKey;
}

export interface CaStoreOptions {
  dir: string;
  trustDomain: string;
  /** Validity of a generated CA, in seconds. */
  caTtl: number;
  clock: Clock;
  random: Random;
  /** How long to wait for a concurrent process that is writing the CA files, in milliseconds. */
  concurrentWriterWaitMs?: number;
}

export interface Loaded<T> {
  readonly value: T;
  /** True when this call generated the material. */
  readonly created: boolean;
  /** Things an operator should fix that do not stop the broker. */
  readonly warnings?: readonly string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const err = (message: string, cause?: unknown) => new CaError(message, { setting: 'WRIT_CA_DIR', cause });

function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw err(`cannot create ${dir}: ${(e as NodeJS.ErrnoException).code}`, e);
  }
  removeStaleTemporaries(dir);
}

/** Publishes a new CA file, naming WRIT_CA_DIR when the file system refuses. */
export function publishCaFile(path: string, data: string, mode: number): boolean {
  try {
    return publishExclusive(path, data, mode);
  } catch (e) {
    throw err(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
}

/**
 * Checks who may read a key file: refuses one that others can read or one that group
 * members can write; warns when group members can read (a shared fsGroup, say).
 */
function checkKeyMode(path: string, warnings: string[]): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o027) throw err(`${path} has mode ${mode.toString(8)}: a private key must not be readable by others (chmod 600)`);
  if (mode & 0o040) warnings.push(`${path} is readable by its group (mode ${mode.toString(8)}); 600 is safer`);
}

export function readCaFile(path: string): Buffer | undefined {
  try {
    return readIfExists(path);
  } catch (e) {
    throw err(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code}`, e);
  }
}

/** Waits for `path` to appear while another process finishes writing it. */
async function waitFor(path: string, ms: number): Promise<Buffer | undefined> {
  for (let waited = 0; waited < ms; waited += 50) {
    const data = readCaFile(path);
    if (data) return data;
    await sleep(50);
  }
  return undefined;
}

/**
 * Loads the CA from `dir`, or generates a self-signed root for the trust domain on
 * first start. Of processes starting at once on one directory exactly one generates.
 */
export async function loadOrCreateCertificateAuthority(opts: CaStoreOptions): Promise<Loaded<CertificateAuthority>> {
  const dir = resolve(opts.dir);
  ensureDir(dir);
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  let certPem = readCaFile(certPath);
  let keyPem = readCaFile(keyPath);
  let created = false;
  if (!certPem && !keyPem) {
    const generated = await generateRootCa(opts);
    created = publishCaFile(keyPath, generated.keyPem, 0o600);
    if (created) publishCaFile(certPath, generated.certPem, 0o644);
    keyPem = readCaFile(keyPath);
    certPem = readCaFile(certPath) ?? (await waitFor(certPath, opts.concurrentWriterWaitMs ?? 10_000));
  } else if (keyPem && !certPem) {
    certPem = await waitFor(certPath, opts.concurrentWriterWaitMs ?? 10_000);
  }
  if (!keyPem) throw err(`${certPath} is present but ${keyPath} is missing`);
  if (!certPem) throw err(`${keyPath} is present but ${certPath} is missing`);
  const warnings: string[] = [];
  checkKeyMode(keyPath, warnings);
  return { value: await parseCertificateAuthority(certPem.toString('utf8'), keyPem, opts), created, warnings };
}

/** A new self-signed root CA for the trust domain, as PEM. */
export async function generateRootCa(opts: Pick<CaStoreOptions, 'trustDomain' | 'caTtl' | 'clock' | 'random'>): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateP256();
  const now = opts.clock.now();
  const td = spiffeIdOf(opts.trustDomain);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(opts.random.bytes(16)),
    name: [{ CN: [opts.trustDomain] }, { O: ['Writ'] }],
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + opts.caTtl * 1000),
    keys,
    signingAlgorithm: P256,
    extensions: await signingCaExtensions(td.uri, keys.publicKey),
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** Validates CA material (generated or operator-provided) and builds the CertificateAuthority. */
export async function parseCertificateAuthority(certPem: string, keyPem: Buffer | string, opts: Pick<CaStoreOptions, 'trustDomain' | 'clock' | 'random'>): Promise<CertificateAuthority> {
  const blocks = certPem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw err(`${CA_CERT_FILE} holds no PEM certificate`);
  let certs: NodeX509[];
  try {
    certs = blocks.map((b) => new NodeX509(b));
  } catch (e) {
    throw err(`${CA_CERT_FILE} holds a certificate that cannot be parsed: ${(e as Error).message}`, e);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw err(`${CA_KEY_FILE} is not a PEM private key`, e);
  }
  const signing = certs[0]!;
  if (!signing.checkPrivateKey(key)) throw err(`${CA_KEY_FILE} does not match the certificate in ${CA_CERT_FILE}`);
  const now = opts.clock.now();
  certs.forEach((c, i) => {
    const what = i === 0 ? `the CA certificate in ${CA_CERT_FILE}` : `chain certificate ${i} in ${CA_CERT_FILE}`;
    if (!c.ca) throw err(`${what} is not a CA certificate (basicConstraints cA is not true)`);
    if (now < new Date(c.validFrom)) throw err(`${what} is not valid before ${new Date(c.validFrom).toISOString()}`);
    if (now > new Date(c.validTo)) throw err(`${what} expired at ${new Date(c.validTo).toISOString()}`);
    const issuer = certs[i + 1];
    if (issuer && !(c.checkIssued(issuer) && c.verify(issuer.publicKey))) throw err(`chain certificate ${i + 1} in ${CA_CERT_FILE} did not issue certificate ${i}`);
  });
  const parsed = certs.map((c) => new x509.X509Certificate(c.raw));
  parsed.forEach((c, i) => {
    // X509-SVID §4.3: a signing certificate sets keyCertSign, in a critical keyUsage extension.
    const ku = c.getExtension(x509.KeyUsagesExtension);
    const what = i === 0 ? `the CA certificate in ${CA_CERT_FILE}` : `chain certificate ${i} in ${CA_CERT_FILE}`;
    if (i === 0 && (!ku || !ku.critical)) throw err(`${what} needs a critical keyUsage extension with keyCertSign`);
    if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) throw err(`${what} lacks keyUsage keyCertSign`);
  });
  checkSigningCertificateId(parsed[0]!, opts.trustDomain);
  let signingKey;
  try {
    signingKey = await importSigningKey(keyPem);
  } catch (e) {
    throw err(`${CA_KEY_FILE}: ${(e as Error).message}`, e);
  }
  return new CertificateAuthority(opts.trustDomain, parsed[0]!, parsed.slice(1), signingKey, opts);
}

/**
 * A signing certificate may carry a SPIFFE ID: exactly one, of the trust domain itself,
 * with no path (X509-SVID §3, §5.1). Other URI SANs are not SPIFFE's concern.
 */
function checkSigningCertificateId(cert: x509.X509Certificate, trustDomain: string): void {
  const uris = (cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [])
    .filter((n) => n.type === 'url' && n.value.toLowerCase().startsWith('spiffe:'))
    .map((n) => n.value);
  if (uris.length === 0) return;
  if (uris.length > 1) throw err(`the CA certificate in ${CA_CERT_FILE} carries ${uris.length} SPIFFE IDs; a certificate has at most one`);
  let id;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (e) {
    throw err(`the CA certificate's SPIFFE ID is invalid: ${(e as Error).message}`, e);
  }
  if (id.trustDomain !== trustDomain) throw err(`the CA certificate is for trust domain "${id.trustDomain}", not WRIT_TRUST_DOMAIN "${trustDomain}"`);
  if (id.path !== '') throw err(`the CA certificate's SPIFFE ID ${id.uri} has a path; a signing certificate's must not`);
}

/** Loads the JWT signing key from `dir`, or generates an ES256 key on first start. */
export async function loadOrCreateJwtSigningKey(opts: Pick<CaStoreOptions, 'dir'>): Promise<Loaded<JwtSigningKey>> {
  const dir = resolve(opts.dir);
  ensureDir(dir);
  const path = join(dir, JWT_KEY_FILE);
  let pem = readCaFile(path);
  let created = false;
  if (!pem) {
    created = publishCaFile(path, generateJwtSigningKeyPem(), 0o600);
    pem = readCaFile(path)!;
  }
  const warnings: string[] = [];
  checkKeyMode(path, warnings);
  return { value: await parseJwtSigningKey(pem, JWT_KEY_FILE), created, warnings };
}

/** A new ES256 key for JWT-SVIDs, as PKCS#8 PEM. */
export function generateJwtSigningKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

/** Reads an ES256 private key; its key ID is the RFC 7638 thumbprint of the public key. */
export async function parseJwtSigningKey(pem: Buffer | string, file: string): Promise<JwtSigningKey> {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    throw err(`${file} is not a PEM private key`, e);
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw err(`${file} must be an EC P-256 key (ES256)`);
  }
  const { kty, crv, x, y } = privateKey.export({ format: 'jwk' });
  const publicJwk = { kty, crv, x, y } as JsonWebKey;
  const kid = await calculateJwkThumbprint(publicJwk as Parameters<typeof calculateJwkThumbprint>[0], 'sha256'); // RFC 7638
  return { kid, alg: 'ES256', privateKey, publicJwk };
}
