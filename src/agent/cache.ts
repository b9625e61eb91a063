import { X509Certificate } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { Logger } from 'pino';
import type { BrokerClient } from '../cli/client';
import { newKeyAndCsr } from '../cli/csr';
import type { Clock } from '../core/clock';
import { parseSpiffeId } from '../spiffe/id';
import type { WorkloadIdentitySource, X509Identity } from './workload-api';

/** A workload entry the agent serves, as GET /v1/agent/entries lists it. */
export interface AgentEntry {
  readonly id: string;
  readonly spiffe_id: string;
  readonly selectors: readonly string[];
  readonly x509_svid_ttl: number;
  readonly jwt_svid_ttl: number;
  readonly dns_names: readonly string[];
  readonly updated_at: string;
}

interface SpiffeBundle {
  keys: ({ use: 'x509-svid'; x5c: string[] } | ({ use: 'jwt-svid'; kid: string } & Record<string, unknown>))[];
  spiffe_sequence?: number;
}

interface CachedX509 {
  readonly identity: X509Identity;
  /** The leaf's serial, lower-case hex without leading zeros. */
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** When to fetch its successor: half of its life, less up to a tenth as jitter (SPIRE's agent rotates at half-life). */
  readonly renewAt: number;
}

interface CachedJwt {
  readonly token: string;
  readonly expiresAt: number;
  readonly renewAt: number;
}

export interface WorkloadCacheOptions {
  /** A client of the broker authenticated as the agent (a new one after each node SVID renewal). */
  readonly broker: () => BrokerClient;
  readonly trustDomain: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** A number in [0, 1) for the renewal jitter; Math.random by default. */
  readonly jitter?: () => number;
}

const pemBody = (pem: string): Buffer[] =>
  [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s/g, ''), 'base64'));

/** A certificate serial as hex, compared without case or leading zeros. */
const normalSerial = (hex: string) => hex.toLowerCase().replace(/^0+(?=.)/, '');

/** Whether every selector of an entry is among the caller's (an entry without selectors matches nobody). */
const matches = (entry: AgentEntry, selectors: ReadonlySet<string>) => entry.selectors.length > 0 && entry.selectors.every((s) => selectors.has(s));

/**
 * What the agent serves its workloads: the entries under it, an X.509-SVID for each (a key made
 * here, signed by the broker through a CSR), JWT-SVIDs on demand, and the trust bundle. `sync()`
 * follows the broker: new entries get SVIDs, removed or disabled ones are dropped at once, SVIDs
 * past half-life are renewed, and the bundle follows rotations. When the broker cannot be
 * reached, what is cached keeps being served until it expires, never after.
 */
export class WorkloadCache implements WorkloadIdentitySource {
  #entries = new Map<string, AgentEntry>();
  #x509 = new Map<string, CachedX509>();
  #jwt = new Map<string, CachedJwt>();
  #x509Authorities: Buffer[] = [];
  #jwks: JSONWebKeySet | undefined;
  #bundleSequence: number | undefined;
  #listeners = new Set<() => void>();
  #synced = false;

  constructor(private readonly opts: WorkloadCacheOptions) {}

  get #now(): number {
    return this.opts.clock.now().getTime();
  }

  /** Whether the first sync has completed (the agent is ready). */
  get synced(): boolean {
    return this.#synced;
  }

  /** The trust bundle's X.509 authorities as PEM, for the agent's own TLS to the broker. */
  get bundlePem(): string | undefined {
    if (this.#x509Authorities.length === 0) return undefined;
    return this.#x509Authorities.map((der) => new X509Certificate(der).toString()).join('');
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch (err) {
        this.opts.logger.warn({ err: { message: (err as Error).message } }, 'a Workload API stream could not be updated');
      }
    }
  }

  /**
   * One round with the broker: the bundle, the entries, then an SVID for every entry that has
   * none or whose SVID is due. Rejects when the broker cannot be reached (the cache stays as it
   * was, less what expired); a failure for one entry does not stop the others.
   */
  async sync(): Promise<void> {
    let changed = this.#dropExpired();
    const broker = this.opts.broker();
    const bundle = await broker.json<SpiffeBundle>('GET', '/v1/bundle');
    if (bundle.spiffe_sequence !== this.#bundleSequence || this.#jwks === undefined) {
      this.#x509Authorities = bundle.keys.flatMap((k) => (k.use === 'x509-svid' ? (k as { x5c: string[] }).x5c.slice(0, 1).map((c) => Buffer.from(c, 'base64')) : []));
      // A JWK Set as go-spiffe's jwtbundle marshals it: the keys without the bundle's `use` (JOSE libraries take only `sig` there).
      this.#jwks = { keys: bundle.keys.filter((k) => k.use === 'jwt-svid').map(({ use: _use, ...key }) => key) as JSONWebKeySet['keys'] };
      this.#bundleSequence = bundle.spiffe_sequence;
      changed = true;
    }
    const { entries, revoked_serials: revoked } = await broker.json<{ entries: AgentEntry[]; revoked_serials: string[] }>('GET', '/v1/agent/entries');
    // A revoked SVID is not served a moment longer; its successor is fetched below.
    const denied = new Set(revoked.map(normalSerial));
    for (const [id, c] of this.#x509) {
      if (denied.has(c.serial)) {
        this.#x509.delete(id);
        changed = true;
      }
    }
    const next = new Map(entries.map((e) => [e.id, e]));
    for (const id of this.#entries.keys()) {
      if (!next.has(id)) {
        // Removed or disabled at the broker: no longer served, at once.
        this.#x509.delete(id);
        for (const key of this.#jwt.keys()) if (key.startsWith(`${id} `)) this.#jwt.delete(key);
        changed = true;
      }
    }
    for (const [id, e] of next) {
      const before = this.#entries.get(id);
      if (before && before.updated_at !== e.updated_at) {
        this.#x509.delete(id); // its SPIFFE ID, TTL or selectors may have changed: a new SVID
        changed = true;
      }
    }
    if ([...next.keys()].join() !== [...this.#entries.keys()].join()) changed = true;
    this.#entries = next;
    for (const entry of next.values()) {
      const cached = this.#x509.get(entry.id);
      if (cached && cached.renewAt > this.#now) continue;
      try {
        this.#x509.set(entry.id, await this.#fetchX509(broker, entry));
        changed = true;
      } catch (err) {
        this.opts.logger.warn({ entryId: entry.id, spiffeId: entry.spiffe_id, err: { message: (err as Error).message } }, 'could not fetch an X.509-SVID for a workload entry; serving what is cached until it expires');
      }
    }
    this.#synced = true;
    if (changed) this.#changed();
  }

  /** Drops SVIDs that expired (while the broker could not be reached): an expired SVID is never served. */
  #dropExpired(): boolean {
    let dropped = false;
    for (const [id, c] of this.#x509) {
      if (c.notAfter <= this.#now) {
        this.#x509.delete(id);
        dropped = true;
      }
    }
    for (const [key, c] of this.#jwt) if (c.expiresAt <= this.#now) this.#jwt.delete(key);
    return dropped;
  }

  /** Expires what is due now, and tells the streams (the agent calls this between syncs). */
  expire(): void {
    if (this.#dropExpired()) this.#changed();
  }

  #renewAt(notBefore: number, notAfter: number): number {
    const half = (notAfter - notBefore) / 2;
    return notBefore + half - half * 0.1 * (this.opts.jitter ?? Math.random)();
  }

  async #fetchX509(broker: BrokerClient, entry: AgentEntry): Promise<CachedX509> {
    const { key, csrPem } = newKeyAndCsr(); // the workload's key is made here and leaves only over the socket
    const issued = await broker.json<{ spiffe_id: string; svid: string }>('POST', '/v1/agent/x509-svid', { entry_id: entry.id, csr: csrPem });
    const chain = pemBody(issued.svid);
    const leaf = new X509Certificate(chain[0]!);
    const notBefore = new Date(leaf.validFrom).getTime();
    const notAfter = new Date(leaf.validTo).getTime();
    const identity: X509Identity = {
      spiffeId: issued.spiffe_id,
      chain,
      key: key.export({ type: 'pkcs8', format: 'der' }),
      bundle: this.#x509Authorities,
      hint: '',
    };
    return { identity, serial: normalSerial(leaf.serialNumber), notBefore, notAfter, renewAt: this.#renewAt(notBefore, notAfter) };
  }

  entitled(selectors: ReadonlySet<string>): boolean {
    for (const e of this.#entries.values()) if (matches(e, selectors)) return true;
    return false;
  }

  x509Svids(selectors: ReadonlySet<string>): readonly X509Identity[] {
    const now = this.#now;
    const out: X509Identity[] = [];
    for (const e of this.#entries.values()) {
      const c = this.#x509.get(e.id);
      if (c && c.notAfter > now && matches(e, selectors)) out.push({ ...c.identity, bundle: this.#x509Authorities });
    }
    return out;
  }

  x509Bundles(): ReadonlyMap<string, readonly Buffer[]> {
    return this.#x509Authorities.length === 0 ? new Map() : new Map([[`spiffe://${this.opts.trustDomain}`, this.#x509Authorities]]);
  }

  jwtBundles(): ReadonlyMap<string, Buffer> {
    return this.#jwks === undefined ? new Map() : new Map([[`spiffe://${this.opts.trustDomain}`, Buffer.from(JSON.stringify(this.#jwks))]]);
  }

  async jwtSvids(selectors: ReadonlySet<string>, audience: readonly string[], spiffeId?: string): Promise<readonly { spiffeId: string; token: string; hint: string }[]> {
    const entries = [...this.#entries.values()].filter((e) => matches(e, selectors) && (spiffeId === undefined || e.spiffe_id === spiffeId));
    // One JWT-SVID per identity of the caller, or for the one it named (which must be its own).
    const out = [];
    for (const entry of entries) {
      const key = `${entry.id} ${[...audience].sort().join(' ')}`;
      let cached = this.#jwt.get(key);
      if (!cached || cached.renewAt <= this.#now) {
        const issued = await this.opts.broker().json<{ token: string; expires_at: string }>('POST', '/v1/agent/jwt-svid', { entry_id: entry.id, audience });
        const expiresAt = Date.parse(issued.expires_at);
        cached = { token: issued.token, expiresAt, renewAt: this.#renewAt(this.#now, expiresAt) };
        this.#jwt.set(key, cached);
      }
      out.push({ spiffeId: entry.spiffe_id, token: cached.token, hint: '' });
    }
    return out;
  }

  /** JWT-SVID §3 and §4 (validation): signed by a key of the bundle, unexpired, the audience among `aud`, `sub` a SPIFFE ID. */
  async validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    if (!this.#jwks) throw new Error('the agent has no JWT bundle yet');
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(this.#jwks), { audience, currentDate: this.opts.clock.now(), requiredClaims: ['sub', 'exp', 'aud'] });
    if (protectedHeader.typ !== undefined && protectedHeader.typ !== 'JWT' && protectedHeader.typ !== 'JOSE') throw new Error(`typ ${protectedHeader.typ} is not JWT or JOSE`); // JWT-SVID §2.3
    const id = parseSpiffeId(payload.sub!); // throws on a subject that is not a SPIFFE ID
    if (id.trustDomain !== this.opts.trustDomain) throw new Error(`sub is in trust domain ${id.trustDomain}, not ${this.opts.trustDomain}`);
    return { spiffeId: payload.sub!, claims: payload as Record<string, unknown> };
  }
}
