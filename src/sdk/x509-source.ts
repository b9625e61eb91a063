import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { newKeyAndCsr } from './csr';
import { SourceClosedError, SvidExpiredError, WritError, WritProblemError, WritProtocolError } from './errors';
import { BrokerConnection, type BrokerAnswer, type BrokerCall, type CallCredentials } from './http';
import { bundleFromDocument, bundleFromPem, sameAuthorities, svidFromAnswer, type X509Bundle, type X509Svid } from './svid';
import { Alarm, systemClock, systemTimers, type Clock, type Timers } from './time';

/**
 * How the source proves what it is to the broker (POST /v1/attest). Exactly one of:
 *
 * - `joinToken`: a single-use join token an admin made for the connector's entry
 *   (`join_token` attestor). Once used it cannot attest again, so an SVID that expires
 *   unrenewed leaves the source stale for good.
 * - `oidcTokenFile`: a file holding an OIDC token from an issuer the broker trusts, such as a
 *   projected Kubernetes service-account token (`oidc` attestor). The file is read at each
 *   attestation, so a rotated token is picked up, and the source can attest again after expiry.
 * - `x509pop`: a certificate of an enterprise PKI the broker trusts, and its key (`x509pop`
 *   attestor). The proof is the TLS handshake: the certificate is the client certificate of the
 *   attest call and the evidence is empty (`{}`). `cert` may hold the leaf followed by intermediates.
 */
export type Attestation =
  | { readonly joinToken: string }
  | { readonly oidcTokenFile: string }
  | { readonly x509pop: { readonly cert: string | Buffer; readonly key: string | Buffer } };

/** Retry timing after a failed renewal, attestation or bundle refresh. */
export interface BackoffOptions {
  /** The first retry comes this long after a failure (then 2×, 4×, … with up to +50 % jitter). Default 1000. */
  readonly initialMs?: number;
  /** Retries are never further apart than this. Default 60000. */
  readonly maxMs?: number;
}

/** The options of {@link X509Source.create}. */
export interface X509SourceOptions {
  /** The broker's base URL, e.g. `https://writ.example.com:8443`. */
  readonly server: string | URL;
  /**
   * The initial trust: PEM CA certificates of the broker's trust bundle, as an operator
   * distributes it (`certs/ca.crt`, or `GET /v1/bundle` as PEM fetched out of band). The
   * broker's certificate must chain to it; after attestation the source follows the bundle the
   * broker publishes.
   */
  readonly bundle: string | Buffer;
  readonly attestation: Attestation;
  /**
   * The broker's SPIFFE ID (e.g. `spiffe://writ.local/writ/server`): when given, the broker's
   * certificate is authorized by this ID instead of by the URL's host name.
   */
  readonly brokerId?: string;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** Default: the global timers, unreferenced. */
  readonly timers?: Timers;
  /** Uniform in [0, 1), for jitter. Default: `Math.random`. */
  readonly random?: () => number;
  readonly backoff?: BackoffOptions;
  /** How long one call to the broker may take. Default 10000. */
  readonly requestTimeoutMs?: number;
}

/** What changed, with the source's SVID and bundle after the change. */
export interface X509SourceUpdate {
  readonly changed: 'svid' | 'bundle';
  readonly svid: X509Svid;
  readonly bundle: X509Bundle;
}

/** Where a background operation failed, and when it is tried again. */
export interface BackgroundFailure {
  readonly operation: 'renew' | 'attest' | 'refresh-bundle';
  /** Failures in a row of this operation, from 1. */
  readonly attempt: number;
  /** When it is tried again; undefined when it will not be (the SVID expires first and cannot be attested again). */
  readonly retryAt: Date | undefined;
}

/** The events of an {@link X509Source}. */
export type X509SourceEvents = {
  /** A new SVID (renewed or attested again), or a bundle whose authorities or sequence changed. */
  update: [update: X509SourceUpdate];
  /**
   * A background renewal, attestation or bundle refresh failed; it is retried with backoff. Only
   * emitted while someone listens: an unobserved background failure never crashes the process.
   */
  error: [error: Error, failure: BackgroundFailure];
  /** The SVID expired unrenewed: {@link X509Source.getX509Svid} throws until a new one comes. */
  stale: [error: SvidExpiredError];
};

/** The current TLS material of a source, for the TLS helpers and the clients built on it. */
export interface SourceMaterial {
  readonly svid: X509Svid;
  /** The SVID's private key as PKCS#8 PEM (the `key` of TLS options). */
  readonly keyPem: string;
  readonly bundle: X509Bundle;
  /** Increments whenever the SVID or the bundle changes. */
  readonly generation: number;
}

/** What the SDK's other modules use of a source; not part of the public API. */
export interface SourceAccess {
  readonly clock: Clock;
  /** The current material; throws SvidExpiredError or SourceClosedError. */
  material(): SourceMaterial;
  /** A call to the broker, over mTLS with the current SVID when `mtls` is set. */
  call(call: Omit<BrokerCall, 'credentials'>, opts: { mtls: boolean }): Promise<BrokerAnswer>;
}

const access = new WeakMap<X509Source, SourceAccess>();

/** The internals of a source, for the SDK's own modules; throws SourceClosedError once it is closed. */
export function accessOf(source: X509Source): SourceAccess {
  const a = access.get(source);
  if (!a) throw new SourceClosedError();
  return a;
}

/** Renewal comes at half the SVID's lifetime, up to this fraction of the lifetime earlier (jitter). */
const RENEWAL_JITTER = 0.1;
/** Backoff delays are lengthened by up to this fraction (jitter). */
const BACKOFF_JITTER = 0.5;
/** Bundle polls come at the refresh hint, up to this fraction earlier (jitter). */
const REFRESH_JITTER = 0.1;
/** The refresh hint when the broker gives none (SPIFFE Trust Domain and Bundle §4.1.2 leaves it to the consumer). */
const DEFAULT_REFRESH_HINT_S = 300;
/** The last renewal attempt is made this long before expiry, when backoff would pass it. */
const LAST_CHANCE_MS = 1000;

/**
 * A connector's X.509-SVID and trust bundle, kept current (after go-spiffe's `X509Source`).
 *
 * `create` attests (POST /v1/attest with a CSR for a key made in this process), then the source
 * renews at half the SVID's lifetime, with jitter (POST /v1/svid/renew over mTLS with the current
 * SVID and a new key), retrying with exponential backoff while the broker cannot answer; and it
 * polls the bundle (GET /v1/bundle) at its refresh hint, taking it when `spiffe_sequence` or the
 * authorities change. An SVID is never served past its `notAfter`: the source then reports
 * itself stale and {@link getX509Svid} throws {@link SvidExpiredError}. A source that attests
 * with an OIDC token file or x509pop attests again after expiry; one with a join token cannot.
 *
 * @example
 * const source = await X509Source.create({
 *   server: 'https://writ.example.com:8443',
 *   bundle: readFileSync('/etc/writ/bundle.pem'),
 *   attestation: { oidcTokenFile: '/var/run/secrets/tokens/writ' },
 * });
 * source.on('error', (err, { operation, retryAt }) => log.warn({ err, operation, retryAt }, 'writ'));
 * const server = createHttpsServer(tlsServerOptions(source, authorizeMemberOf('writ.local')), app);
 * // …
 * await source.close();
 */
export class X509Source extends EventEmitter<X509SourceEvents> {
  readonly #broker: BrokerConnection;
  readonly #attestation: Attestation;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #renewal: Alarm;
  readonly #expiry: Alarm;
  readonly #refresh: Alarm;
  readonly #pending = new Set<Promise<void>>();
  #svid: X509Svid | undefined;
  #keyPem = '';
  #bundle: X509Bundle;
  #generation = 0;
  #closed = false;
  #rotating = false;
  #staleReported = false;
  #svidFailures = 0;
  /** New SVIDs in a row that were past their renewal time on arrival (this host's clock runs ahead of the broker's). */
  #dueOnArrival = 0;
  #bundleFailures = 0;
  /** Set when the broker refused a renewal outright: the next attempt attests instead, if it can. */
  #attestNext = false;

  /**
   * Attests and returns a source holding an SVID, or rejects: {@link WritProblemError} when the
   * broker refuses the attestation (its `type` says why, e.g. `urn:writ:problem:token-unusable`),
   * {@link WritUnavailableError} when it cannot be reached. It does not retry: a caller that
   * starts before the broker decides how long to wait.
   */
  static async create(options: X509SourceOptions): Promise<X509Source> {
    const source = new X509Source(options);
    try {
      await source.#start();
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  }

  private constructor(options: X509SourceOptions) {
    super();
    const kinds = ['joinToken', 'oidcTokenFile', 'x509pop'].filter((k) => (options.attestation as Record<string, unknown>)?.[k] !== undefined);
    if (kinds.length !== 1) throw new TypeError('attestation must be exactly one of { joinToken }, { oidcTokenFile }, { x509pop: { cert, key } }');
    this.#attestation = options.attestation;
    this.#bundle = bundleFromPem(options.bundle, undefined, 'the initial bundle');
    this.#clock = options.clock ?? systemClock;
    const timers = options.timers ?? systemTimers;
    this.#random = options.random ?? Math.random;
    this.#initialBackoffMs = options.backoff?.initialMs ?? 1000;
    this.#maxBackoffMs = Math.max(this.#initialBackoffMs, options.backoff?.maxMs ?? 60_000);
    this.#broker = new BrokerConnection(options.server, { timeoutMs: options.requestTimeoutMs ?? 10_000, ...(options.brokerId !== undefined && { brokerId: options.brokerId }) });
    this.#renewal = new Alarm(this.#clock, timers);
    this.#expiry = new Alarm(this.#clock, timers);
    this.#refresh = new Alarm(this.#clock, timers);
    access.set(this, {
      clock: this.#clock,
      material: () => this.#material(),
      call: (call, opts) => this.#call(call, opts.mtls),
    });
  }

  /**
   * The current X.509-SVID. Throws {@link SvidExpiredError} once it has expired unrenewed, and
   * {@link SourceClosedError} after {@link close}. Read it at each use rather than keeping it.
   */
  getX509Svid(): X509Svid {
    return this.#material().svid;
  }

  /** The current trust bundle of the broker's trust domain. Throws {@link SourceClosedError} after {@link close}. */
  getBundle(): X509Bundle {
    if (this.#closed) throw new SourceClosedError();
    return this.#bundle;
  }

  /** The SPIFFE ID this source attested as (it does not change at renewal). */
  get spiffeId(): string {
    if (!this.#svid) throw new SourceClosedError();
    return this.#svid.spiffeId;
  }

  /** Whether the SVID has expired without being renewed (by the injected clock). */
  isStale(): boolean {
    return this.#svid === undefined || this.#clock.now().getTime() >= this.#svid.notAfter.getTime();
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops every timer, closes connections to the broker and waits for operations in flight to end. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    access.delete(this);
    this.#renewal.cancel();
    this.#expiry.cancel();
    this.#refresh.cancel();
    this.#broker.close();
    await Promise.allSettled([...this.#pending]);
  }

  // -------------------------------------------------------------------------------------
  // Start-up.

  async #start(): Promise<void> {
    const issued = await this.#obtain('attest');
    this.#install(issued.svid, issued.keyPem);
    if (issued.bundlePem !== undefined) this.#bundle = bundleFromPem(issued.bundlePem, issued.svid.id.trustDomain, 'the bundle of the attest answer');
    this.#schedule();
    // The bundle document (sequence, refresh hint, JWT authorities). The SVID is already issued
    // (and a join token used up), so a failure here is retried in the background, not thrown.
    try {
      await this.#fetchBundle();
      this.#refresh.after(this.#refreshInterval(), () => this.#track(this.#refreshBundle()));
    } catch (err) {
      this.#bundleFailed(err);
    }
  }

  // -------------------------------------------------------------------------------------
  // The SVID: attest, renew, expire.

  get #reattestable(): boolean {
    return !('joinToken' in this.#attestation);
  }

  /** A new key and CSR, and the SVID the broker issues for it. */
  async #obtain(mode: 'attest' | 'renew'): Promise<{ svid: X509Svid; keyPem: string; bundlePem: string | undefined }> {
    const { privateKey, privateKeyPem, csrPem } = await newKeyAndCsr();
    let answer: BrokerAnswer;
    if (mode === 'renew') {
      answer = await this.#call({ method: 'POST', path: '/v1/svid/renew', json: { csr: csrPem } }, true);
    } else {
      const { attestor, evidence, credentials } = await this.#evidence();
      answer = await this.#broker.call({ method: 'POST', path: '/v1/attest', json: { attestor, evidence, csr: csrPem }, credentials: { ca: this.#bundle.x509AuthoritiesPem, ...credentials } });
    }
    const body = (answer.body ?? {}) as { svid?: unknown; bundle?: unknown; spiffe_id?: unknown };
    const svid = svidFromAnswer(body.svid, privateKey, answer.status);
    if (typeof body.spiffe_id === 'string' && body.spiffe_id !== svid.spiffeId) throw new WritProtocolError(`the broker answered spiffe_id ${body.spiffe_id} with an SVID for ${svid.spiffeId}`, answer.status);
    if (this.#svid && svid.id.trustDomain !== this.#svid.id.trustDomain) throw new WritProtocolError(`the broker issued an SVID of trust domain ${svid.id.trustDomain}, not ${this.#svid.id.trustDomain}`, answer.status);
    return { svid, keyPem: privateKeyPem, bundlePem: typeof body.bundle === 'string' && body.bundle.includes('-----BEGIN CERTIFICATE-----') ? body.bundle : undefined };
  }

  /** The attest request's attestor and evidence, and the client certificate x509pop proves itself with. */
  async #evidence(): Promise<{ attestor: string; evidence: Record<string, unknown>; credentials: Partial<CallCredentials> }> {
    const a = this.#attestation;
    if ('joinToken' in a) return { attestor: 'join_token', evidence: { token: a.joinToken }, credentials: {} };
    if ('oidcTokenFile' in a) {
      let token: string;
      try {
        token = (await readFile(a.oidcTokenFile, 'utf8')).trim();
      } catch (err) {
        throw new WritError(`cannot read the OIDC token file ${a.oidcTokenFile}: ${(err as Error).message}`, { cause: err });
      }
      return { attestor: 'oidc', evidence: { token }, credentials: {} };
    }
    // x509pop: the evidence is empty; the proof of possession is the TLS handshake itself.
    return { attestor: 'x509pop', evidence: {}, credentials: { cert: a.x509pop.cert, key: a.x509pop.key } };
  }

  #install(svid: X509Svid, keyPem: string): void {
    this.#svid = svid;
    this.#keyPem = keyPem;
    this.#bundle = { ...this.#bundle, trustDomain: svid.id.trustDomain };
    this.#generation++;
    this.#staleReported = false;
  }

  /**
   * Renewal at half-life (jittered earlier), and the stale check at expiry. An SVID already past
   * its renewal time on arrival (a clock ahead of the broker's) is renewed after a backoff: at once
   * would only fetch another such SVID, in a loop.
   */
  #schedule(): void {
    const svid = this.#svid!;
    const from = svid.notBefore.getTime();
    const lifetime = svid.notAfter.getTime() - from;
    const halfLife = from + lifetime * (0.5 - RENEWAL_JITTER * this.#random());
    const now = this.#clock.now().getTime();
    this.#dueOnArrival = halfLife > now ? 0 : this.#dueOnArrival + 1;
    const renewAt = this.#dueOnArrival === 0 ? halfLife : this.#retryAt(this.#dueOnArrival, now);
    if (renewAt === undefined) this.#renewal.cancel();
    else this.#renewal.at(renewAt, () => this.#rotate());
    this.#expiry.at(svid.notAfter.getTime(), () => this.#expired());
  }

  /**
   * When to try for an SVID again after `attempt` tries in a row came to nothing: after the
   * backoff, but for a source that cannot attest again never after its SVID expires (the last
   * chance is just before); undefined once that has passed.
   */
  #retryAt(attempt: number, now: number): number | undefined {
    const at = now + this.#backoff(attempt);
    const notAfter = this.#svid!.notAfter.getTime();
    if (this.#reattestable || at < notAfter) return at;
    return notAfter - LAST_CHANCE_MS > now ? notAfter - LAST_CHANCE_MS : undefined;
  }

  #rotate(): void {
    if (this.#closed || this.#rotating) return;
    const expired = this.isStale();
    if (expired && !this.#reattestable) return;
    this.#rotating = true;
    this.#track(this.#rotation(expired));
  }

  async #rotation(expired: boolean): Promise<void> {
    const mode = (expired || this.#attestNext) && this.#reattestable ? 'attest' : 'renew';
    let issued;
    try {
      issued = await this.#obtain(mode);
    } catch (err) {
      this.#rotating = false; // before anything is scheduled or reported, so that a retry is never skipped
      if (this.#closed) return;
      this.#svidFailures++;
      // The broker refused this SVID (revoked, or not live any more): renewing again will not help; attesting may.
      if (mode === 'renew' && err instanceof WritProblemError && err.status < 500) this.#attestNext = true;
      const retryAt = this.#retryAt(this.#svidFailures, this.#clock.now().getTime());
      if (retryAt !== undefined) this.#renewal.at(retryAt, () => this.#rotate());
      this.#report(err, { operation: mode, attempt: this.#svidFailures, retryAt: retryAt === undefined ? undefined : new Date(retryAt) });
      return;
    }
    this.#rotating = false;
    if (this.#closed) return;
    this.#svidFailures = 0;
    this.#attestNext = false;
    this.#install(issued.svid, issued.keyPem);
    this.#schedule();
    // The answer carries the bundle: authorities that changed are fetched now, not at the next poll.
    // Polling that stopped at expiry (a last renewal answered after notAfter) starts again too.
    if ((issued.bundlePem !== undefined && this.#differs(issued.bundlePem)) || !this.#refresh.armed) {
      this.#refresh.cancel();
      this.#track(this.#refreshBundle());
    }
    this.emit('update', { changed: 'svid', svid: issued.svid, bundle: this.#bundle }); // last: state is complete whatever listeners do
  }

  #expired(): void {
    if (this.#closed) return;
    const svid = this.#svid!;
    if (!this.isStale()) return this.#expiry.at(svid.notAfter.getTime(), () => this.#expired());
    if (!this.#reattestable) {
      // Nothing more can be done: a join token attests once. Stop polling for a source that cannot serve.
      this.#renewal.cancel();
      this.#refresh.cancel();
    } else if (!this.#renewal.armed) {
      this.#rotate();
    }
    if (!this.#staleReported) {
      this.#staleReported = true;
      this.emit('stale', new SvidExpiredError(svid.spiffeId, svid.notAfter));
    }
  }

  // -------------------------------------------------------------------------------------
  // The bundle.

  /** Fetches the bundle document and takes it; answers it when it changed. */
  async #fetchBundle(): Promise<X509Bundle | undefined> {
    const answer = await this.#broker.call({ method: 'GET', path: '/v1/bundle', accept: 'application/json', credentials: { ca: this.#bundle.x509AuthoritiesPem } });
    if (this.#closed) return undefined;
    const next = bundleFromDocument(answer.body, this.#svid?.id.trustDomain, answer.status);
    const current = this.#bundle;
    const kids = (b: X509Bundle) => b.jwtAuthorities.map((a) => a.kid).sort().join(',');
    if (next.sequence === current.sequence && sameAuthorities(next.x509Authorities, current.x509Authorities) && kids(next) === kids(current)) {
      this.#bundle = next; // the refresh hint may have changed
      return undefined;
    }
    this.#bundle = next;
    this.#generation++;
    return next;
  }

  /** Whether PEM authorities (of an attest or renew answer) differ from the bundle's; unreadable ones do. */
  #differs(pem: string): boolean {
    try {
      return !sameAuthorities(bundleFromPem(pem, undefined, 'the bundle of the answer').x509Authorities, this.#bundle.x509Authorities);
    } catch {
      return true;
    }
  }

  /** A stale source that cannot attest again: it will never serve, so it stops polling. */
  get #finished(): boolean {
    return this.#closed || (this.isStale() && !this.#reattestable);
  }

  async #refreshBundle(): Promise<void> {
    if (this.#finished) return;
    let changed;
    try {
      changed = await this.#fetchBundle();
    } catch (err) {
      if (!this.#finished) this.#bundleFailed(err);
      return;
    }
    if (this.#finished) return;
    this.#bundleFailures = 0;
    this.#refresh.after(this.#refreshInterval(), () => this.#track(this.#refreshBundle()));
    if (changed) this.emit('update', { changed: 'bundle', svid: this.#svid!, bundle: changed });
  }

  #bundleFailed(err: unknown): void {
    this.#bundleFailures++;
    const delay = Math.min(this.#backoff(this.#bundleFailures), this.#refreshInterval());
    const retryAt = this.#clock.now().getTime() + delay;
    this.#refresh.at(retryAt, () => this.#track(this.#refreshBundle()));
    this.#report(err, { operation: 'refresh-bundle', attempt: this.#bundleFailures, retryAt: new Date(retryAt) });
  }

  #refreshInterval(): number {
    return (this.#bundle.refreshHint ?? DEFAULT_REFRESH_HINT_S) * 1000 * (1 - REFRESH_JITTER * this.#random());
  }

  // -------------------------------------------------------------------------------------
  // Plumbing.

  #material(): SourceMaterial {
    if (this.#closed) throw new SourceClosedError();
    const svid = this.#svid!;
    if (this.isStale()) throw new SvidExpiredError(svid.spiffeId, svid.notAfter);
    return { svid, keyPem: this.#keyPem, bundle: this.#bundle, generation: this.#generation };
  }

  #call(call: Omit<BrokerCall, 'credentials'>, mtls: boolean): Promise<BrokerAnswer> {
    if (!mtls) {
      if (this.#closed) return Promise.reject(new SourceClosedError());
      return this.#broker.call({ ...call, credentials: { ca: this.#bundle.x509AuthoritiesPem } });
    }
    let material: SourceMaterial;
    try {
      material = this.#material();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#broker.call({ ...call, credentials: { ca: material.bundle.x509AuthoritiesPem, cert: material.svid.certificatesPem, key: material.keyPem } });
  }

  /** Exponential backoff with jitter: initial × 2^(n−1), lengthened by up to half, capped. */
  #backoff(failures: number): number {
    const base = this.#initialBackoffMs * 2 ** Math.min(failures - 1, 30);
    return Math.min(this.#maxBackoffMs, base * (1 + BACKOFF_JITTER * this.#random()));
  }

  #report(err: unknown, failure: BackgroundFailure): void {
    if (this.listenerCount('error') === 0) return;
    const error = err instanceof Error ? err : new WritError(String(err));
    this.emit('error', error, failure);
  }

  /**
   * Keeps a background operation until it ends (close() waits for it). Operations report their
   * own failures; what escapes is a listener's exception, rethrown as Node does for listeners
   * of timer-driven events.
   */
  #track(p: Promise<void>): void {
    const tracked = p.catch((err) => {
      process.nextTick(() => {
        throw err;
      });
    });
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }
}
