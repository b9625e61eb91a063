import { isIP } from 'node:net';
import type { Clock } from '../core/clock';
import { isDnsName } from '../core/dns';
import { BROKER_PATH, isBrokerPath, parseSpiffeId } from '../spiffe/id';
import type { Random } from '../core/random';
import { knownSpki } from './csr';
import { CaError, SvidRequestRejected } from './errors';
import type { SigningKey } from './keys';
import { IssuedCertificate, LeafCertificateWriter } from './leaf';
import { serialNumber, x509SvidExtensions, type LeafProfile } from './templates';
import { subtle, x509 } from './x509';

/** An X.509-SVID: the leaf certificate and the intermediates up to (not including) the trust anchor. */
export interface X509Svid {
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly certificate: x509.X509Certificate;
  /** Intermediates between the leaf and the bundle's authority; empty when a root signs directly. */
  readonly intermediates: readonly x509.X509Certificate[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface X509SvidRequest {
  spiffeId: string;
  /** The subject's public key (the requester proves possession elsewhere). */
  publicKey: CryptoKey;
  /** Requested lifetime in seconds; capped by the CA's own expiry. */
  ttl: number;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** The broker's own SVID (ServerSvid): only it may have a SPIFFE ID under /writ. */
  forBroker?: boolean;
}

const wholeSeconds = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);

/** Leaf validity starts this many seconds early to tolerate clock skew between peers. */
const BACKDATE_SECONDS = 10;

/**
 * The signing CA: its certificate, the chain above it, and its key. The last
 * certificate of [certificate, ...chain] is the trust anchor published in the bundle.
 */
export class CertificateAuthority {
  /** The direct DER writer for this CA's leaves, made on first use; undefined when its key type needs the generic path. */
  #writer?: Promise<LeafCertificateWriter | undefined>;

  constructor(
    readonly trustDomain: string,
    readonly certificate: x509.X509Certificate,
    readonly chain: readonly x509.X509Certificate[],
    private readonly key: SigningKey,
    /** `genericIssuance` forces the @peculiar/x509 path, for tests that compare the two. */
    private readonly deps: { clock: Clock; random: Random; genericIssuance?: boolean },
  ) {}

  /** The certificate peers trust: the root of the chain. */
  get anchor(): x509.X509Certificate {
    return this.chain.length > 0 ? this.chain[this.chain.length - 1]! : this.certificate;
  }

  /** The end of the chain's validity: no leaf outlives any certificate above it. */
  get notAfter(): Date {
    return new Date(Math.min(...[this.certificate, ...this.chain].map((c) => c.notAfter.getTime())));
  }

  /** Checks a request against what this CA signs; throws SvidRequestRejected. */
  private check(req: X509SvidRequest): void {
    let id;
    try {
      id = parseSpiffeId(req.spiffeId);
    } catch (err) {
      throw new SvidRequestRejected((err as Error).message);
    }
    if (id.trustDomain !== this.trustDomain) throw new SvidRequestRejected(`SPIFFE ID ${req.spiffeId} is not in trust domain "${this.trustDomain}"`);
    if (id.path === '') throw new SvidRequestRejected('an X.509-SVID leaf needs a SPIFFE ID with a path'); // X509-SVID §2, §5.2
    // However an entry came to name it (made before the reservation, or written to the database directly), no workload gets the broker's identity.
    if (isBrokerPath(id.path) && req.forBroker !== true) throw new SvidRequestRejected(`SPIFFE ID ${req.spiffeId} is under ${BROKER_PATH}, which is reserved for the broker's own identity`);
    if (!Number.isInteger(req.ttl) || req.ttl <= 0) throw new SvidRequestRejected(`lifetime must be a positive whole number of seconds, got ${req.ttl}`);
    const badDns = req.dnsNames?.find((n) => !isDnsName(n));
    if (badDns !== undefined) throw new SvidRequestRejected(`"${badDns}" is not a valid DNS name`);
    const badIp = req.ipAddresses?.find((ip) => isIP(ip) === 0);
    if (badIp !== undefined) throw new SvidRequestRejected(`"${badIp}" is not an IP address`);
  }

  /** Signs an X.509-SVID from the X509-SVID leaf template. */
  async signX509Svid(req: X509SvidRequest): Promise<X509Svid> {
    this.check(req);
    const now = this.deps.clock.now();
    if (now >= this.notAfter) throw new CaError('the CA certificate has expired', { setting: 'WRIT_CA_DIR' });
    // X.509 validity has whole seconds (RFC 5280 §4.1.2.5); round so the lease records exactly what the certificate says.
    const notBefore = wholeSeconds(Math.max(now.getTime() - BACKDATE_SECONDS * 1000, this.certificate.notBefore.getTime()));
    const notAfter = wholeSeconds(Math.min(now.getTime() + req.ttl * 1000, this.notAfter.getTime()));
    const serial = serialNumber(this.deps.random.bytes(16));
    const profile = { spiffeId: req.spiffeId, dnsNames: req.dnsNames ?? [], ipAddresses: req.ipAddresses ?? [] };
    const writer = this.deps.genericIssuance ? undefined : await (this.#writer ??= LeafCertificateWriter.create(this.certificate, this.key));
    const certificate = writer
      ? new IssuedCertificate(
          writer.write({
            ...profile,
            serialNumber: serial,
            notBefore,
            notAfter,
            spki: knownSpki(req.publicKey) ?? new Uint8Array(await subtle.exportKey('spki', req.publicKey)),
            rsaSubject: req.publicKey.algorithm.name.startsWith('RSA'),
          }),
        )
      : await this.generic(serial, notBefore, notAfter, req, profile);
    const intermediates = this.chain.length > 0 ? [this.certificate, ...this.chain.slice(0, -1)] : [];
    return { spiffeId: req.spiffeId, serialNumber: serial, certificate, intermediates, notBefore, notAfter };
  }

  /** The generic path: @peculiar/x509 builds and WebCrypto signs. For CA key types the direct writer does not cover. */
  private async generic(serial: string, notBefore: Date, notAfter: Date, req: X509SvidRequest, profile: LeafProfile): Promise<x509.X509Certificate> {
    return x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: 'O=Writ',
      issuer: this.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey: req.publicKey,
      signingKey: this.key.privateKey,
      signingAlgorithm: this.key.signingAlgorithm,
      extensions: await x509SvidExtensions(profile, req.publicKey, this.certificate),
    });
  }
}
