import type { Clock } from '../core/clock';
import { BROKER_PATH, spiffeIdOf } from '../spiffe/id';
import type { X509Svid } from './authority';
import type { SigningAuthorities } from './rotator';
import { exportPkcs8Pem, generateP256 } from './keys';

/** Key and certificate chain for a TLS server, in PEM. */
export interface TlsCredentials {
  readonly svid: X509Svid;
  /** The leaf followed by any intermediates. */
  readonly certChainPem: string;
  readonly keyPem: string;
}

export interface ServerSvidOptions {
  trustDomain: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  /** Lifetime in seconds. */
  ttl: number;
  clock: Clock;
  /** Called with each new SVID before it is used: the lease is durable first. */
  onIssued: (svid: X509Svid) => Promise<void>;
}

/** The path of the broker's own SPIFFE ID, under the reserved {@link BROKER_PATH}. */
export const SERVER_SVID_PATH = `${BROKER_PATH}/server`;

/** Renew once two thirds of the lifetime have passed, as SPIRE agents do at half-life or later. */
const RENEW_AT_FRACTION = 2 / 3;

/**
 * The broker's own X.509-SVID (spiffe://<td>/writ/server), used as its HTTPS
 * certificate. A fresh key for each certificate; renewed before it expires.
 */
export class ServerSvid {
  #current: TlsCredentials | undefined;

  constructor(
    private readonly authority: Pick<SigningAuthorities, 'ca'>,
    private readonly opts: ServerSvidOptions,
  ) {}

  get current(): TlsCredentials | undefined {
    return this.#current;
  }

  /** Whether the current SVID has used up enough of its life to be replaced. */
  dueForRenewal(): boolean {
    const c = this.#current?.svid;
    if (!c) return true;
    const life = c.notAfter.getTime() - c.notBefore.getTime();
    return this.opts.clock.now().getTime() >= c.notBefore.getTime() + life * RENEW_AT_FRACTION;
  }

  /**
   * Whether the current SVID is past five sixths of its life: renewal (due at two
   * thirds) has been failing, and the broker should stop reporting ready.
   */
  nearExpiry(): boolean {
    const c = this.#current?.svid;
    if (!c) return true;
    const life = c.notAfter.getTime() - c.notBefore.getTime();
    return this.opts.clock.now().getTime() >= c.notBefore.getTime() + (life * 5) / 6;
  }

  /** Issues a new server SVID with a new key and makes it current. */
  async issue(): Promise<TlsCredentials> {
    const keys = await generateP256();
    const svid = await this.authority.ca.signX509Svid({
      spiffeId: spiffeIdOf(this.opts.trustDomain, SERVER_SVID_PATH).uri,
      publicKey: keys.publicKey,
      ttl: this.opts.ttl,
      dnsNames: this.opts.dnsNames,
      ipAddresses: this.opts.ipAddresses,
      forBroker: true,
    });
    await this.opts.onIssued(svid);
    const certChainPem = [svid.certificate, ...svid.intermediates].map((c) => c.toString('pem')).join('\n') + '\n';
    this.#current = { svid, certChainPem, keyPem: await exportPkcs8Pem(keys.privateKey) };
    return this.#current;
  }
}
