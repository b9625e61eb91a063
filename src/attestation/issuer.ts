import { SignJWT } from 'jose';
import type { AuditLog } from '../audit';
import type { SigningAuthorities, X509Svid } from '../ca';
import { parseCsr } from '../ca/csr';
import type { Clock } from '../core/clock';
import { DomainError } from '../core/errors';
import type { Random } from '../core/random';
import { LeaseRefused, type LeaseBasis, type LeaseStore, type RevocationEpoch } from '../leases';
import type { AttestationContext, Attestor } from './attestor';
import type { EntryStore, RegistrationEntry } from './entries';
import { AttestationError } from './errors';
import { sha256 } from '../core/hash';
import type { TrustBundle } from '../spiffe/bundle';
import { noMetrics, type DomainMetrics } from '../telemetry/metrics';

/** An X.509-SVID as handed to a workload. */
export interface IssuedX509Svid {
  readonly spiffeId: string;
  readonly svid: X509Svid;
  /** Leaf first, then intermediates (X509-SVID §5.3). */
  readonly chainPem: string;
  /** The trust bundle, read before the SVID was issued: an SVID is never issued and then not delivered. */
  readonly bundle: TrustBundle;
}

/** A JWT-SVID (JWT-SVID §3). */
export interface IssuedJwtSvid {
  readonly token: string;
  readonly spiffeId: string;
  readonly expiresAt: Date;
}

/** The caller on an mTLS route: its SVID's SPIFFE ID, serial and SHA-256 fingerprint, from a verified client certificate. */
export interface PeerSvid {
  readonly spiffeId: string;
  readonly serial: string;
  readonly fingerprint: string;
}

export interface AttestRequest {
  readonly attestor: string;
  readonly evidence: Record<string, unknown>;
  readonly csr: string;
}

export interface SvidIssuerDeps {
  /** What signs now; read at each issuance, so a CA rotation takes effect at once. */
  authority: SigningAuthorities;
  entries: EntryStore;
  leases: LeaseStore;
  /** The latest revocation this replica has heard of, read as each request begins (src/leases/ordering.ts). */
  epochs: RevocationEpoch;
  audit: AuditLog;
  attestors: readonly Attestor[];
  /** The trust bundle delivered with each X.509-SVID (SPIFFE Trust Domain and Bundle §4). */
  bundle: { current(): Promise<TrustBundle> };
  /** Lifetime caps, applied at each issuance too: lowering one takes effect for existing entries. */
  limits: { x509SvidMaxTtl: number; jwtSvidMaxTtl: number };
  clock: Clock;
  random: Random;
  /** Attestations, renewals and JWT-SVIDs by outcome, counted once the lease is committed or the refusal decided. */
  metrics?: Pick<DomainMetrics, 'attestation' | 'svidRenewal' | 'jwtSvid'>;
}

/**
 * A lease refused at commit (a revocation won the race): answered as a request made after the
 * revocation is answered: on mTLS routes as the route refuses a revoked SVID, at attestation as
 * a disabled entry (kill switch). Other errors pass unchanged.
 */
function lostRace(err: unknown, spiffeId: string, route: 'attest' | 'mtls'): unknown {
  if (!(err instanceof LeaseRefused)) return err;
  const { refusal } = err;
  if (route === 'mtls' && (refusal.reason === 'requires' || (refusal.reason === 'revoked' && (refusal.kind === 'kill-switch' || refusal.kind === 'connector')))) {
    return new AttestationError('unauthenticated', 'this route needs a current X.509-SVID of this trust domain as the TLS client certificate', err);
  }
  if (refusal.reason === 'revoked' && refusal.kind === 'kill-switch') return new AttestationError('entry-disabled', `the entry for ${spiffeId} is disabled`, err);
  return new AttestationError('revoked', `a revocation naming ${spiffeId} arrived while its SVID was being issued; nothing was issued`, err);
}

const refusalCode = (err: unknown) => (err instanceof DomainError ? err.type.replace(/^urn:writ:problem:/, '') : 'internal');

/**
 * Issues SVIDs: attest (verify the CSR, verify the evidence, find the entry, sign,
 * commit the lease, audit), renew over mTLS, and JWT-SVIDs. Every issuance and every
 * refusal is audited; nothing is handed out before its lease is committed.
 */
export class SvidIssuer {
  private readonly attestors: ReadonlyMap<string, Attestor>;

  constructor(private readonly deps: SvidIssuerDeps) {
    this.attestors = new Map(deps.attestors.map((a) => [a.name, a]));
  }

  get #metrics(): Pick<DomainMetrics, 'attestation' | 'svidRenewal' | 'jwtSvid'> {
    return this.deps.metrics ?? noMetrics;
  }

  get attestorNames(): string[] {
    return [...this.attestors.keys()];
  }

  /** POST /v1/attest: evidence + CSR → X.509-SVID. */
  async attest(req: AttestRequest, context: AttestationContext): Promise<IssuedX509Svid> {
    const bundle = await this.deps.bundle.current(); // unavailable: nothing is issued (nor a join token used)
    let selectors: readonly string[] = [];
    try {
      const epoch = await this.deps.epochs.begin(); // before any check
      const attestor = this.attestors.get(req.attestor);
      if (!attestor) throw new AttestationError('unknown-attestor', `unknown attestor "${req.attestor.slice(0, 64)}"; this broker has ${this.attestorNames.join(', ') || 'none'}`);
      const csr = await parseCsr(req.csr); // before the evidence, so a bad CSR does not use up a join token
      const result = await attestor.attest(req.evidence, context);
      selectors = result.selectors;
      const entry = result.entryId ? await this.entryForToken(result.entryId) : await this.entryFor(result.selectors);
      const issued = await this.issue(entry, csr.publicKey, { attestor: attestor.name, selectors }, { epoch, requires: [] }).catch((err: unknown) => {
        throw lostRace(err, entry.spiffeId, 'attest');
      });
      this.#metrics.attestation(attestor.name, 'issued');
      return { ...issued, bundle };
    } catch (err) {
      this.#metrics.attestation(req.attestor, 'refused');
      await this.deps.audit.append({ type: 'svid.refused', details: { attestor: req.attestor.slice(0, 64), selectors, reason: refusalCode(err) } });
      throw err;
    }
  }

  /** POST /v1/svid/renew: a current SVID + CSR → a new SVID for the same SPIFFE ID. */
  async renew(peer: PeerSvid, csrPem: string): Promise<IssuedX509Svid> {
    const bundle = await this.deps.bundle.current(); // unavailable: nothing is issued
    try {
      const epoch = await this.deps.epochs.begin(); // before any check
      const csr = await parseCsr(csrPem);
      const { entry, leaseId } = await this.entryOfLiveSvid(peer);
      // The SVID renewed from must still be live when the new one commits.
      const issued = await this.issue(entry, csr.publicKey, { renewed: peer.serial }, { epoch, requires: [leaseId] }).catch((err: unknown) => {
        throw lostRace(err, entry.spiffeId, 'mtls');
      });
      this.#metrics.svidRenewal('issued');
      return { ...issued, bundle };
    } catch (err) {
      this.#metrics.svidRenewal('refused');
      await this.deps.audit.append({ type: 'svid.refused', actor: peer.spiffeId, details: { renew: peer.serial, reason: refusalCode(err) } });
      throw err;
    }
  }

  /** POST /v1/jwt-svid: a JWT-SVID for the caller, for the given audiences (JWT-SVID §3). */
  async jwtSvid(peer: PeerSvid, audience: readonly string[]): Promise<IssuedJwtSvid> {
    let live: { entry: RegistrationEntry; leaseId: string };
    let epoch: number;
    try {
      epoch = await this.deps.epochs.begin(); // before any check
      live = await this.entryOfLiveSvid(peer);
    } catch (err) {
      this.#metrics.jwtSvid('refused');
      await this.deps.audit.append({ type: 'jwt_svid.refused', actor: peer.spiffeId, details: { audience, reason: refusalCode(err) } });
      throw err;
    }
    return this.mintJwtSvid(live.entry, audience, { epoch, requires: [live.leaseId] }, peer.spiffeId);
  }

  /**
   * The workload entries an agent serves (parent_id = its SPIFFE ID), enabled ones only, as
   * SPIRE's agent syncs them: the agent's own SVID must be live and its entry enabled.
   */
  async agentEntries(agent: PeerSvid): Promise<RegistrationEntry[]> {
    await this.entryOfLiveSvid(agent);
    return (await this.deps.entries.underAgent(agent.spiffeId)).filter((e) => e.enabled);
  }

  /**
   * An X.509-SVID for a workload of an agent: for an enabled entry under that agent only, the
   * key the agent generated on its node (the CSR), and the agent's own SVID still live when the
   * lease commits. The agent attested the caller (its selectors); the broker checks whose entry it is.
   */
  async workloadX509Svid(agent: PeerSvid, entryId: string, csrPem: string): Promise<IssuedX509Svid> {
    const bundle = await this.deps.bundle.current(); // unavailable: nothing is issued
    try {
      const epoch = await this.deps.epochs.begin(); // before any check
      const csr = await parseCsr(csrPem);
      const { leaseId } = await this.entryOfLiveSvid(agent);
      const entry = await this.workloadEntry(agent, entryId);
      const issued = await this.issue(entry, csr.publicKey, { attestor: 'agent', agent: agent.spiffeId }, { epoch, requires: [leaseId] }).catch((err: unknown) => {
        throw lostRace(err, entry.spiffeId, 'mtls');
      });
      this.#metrics.attestation('agent', 'issued');
      return { ...issued, bundle };
    } catch (err) {
      this.#metrics.attestation('agent', 'refused');
      await this.deps.audit.append({ type: 'svid.refused', actor: agent.spiffeId, details: { attestor: 'agent', agent: agent.spiffeId, entryId: entryId.slice(0, 64), reason: refusalCode(err) } });
      throw err;
    }
  }

  /** A JWT-SVID for a workload of an agent (as {@link workloadX509Svid}: its entry, the agent live). */
  async workloadJwtSvid(agent: PeerSvid, entryId: string, audience: readonly string[]): Promise<IssuedJwtSvid> {
    let entry: RegistrationEntry;
    let basis: LeaseBasis;
    try {
      const epoch = await this.deps.epochs.begin(); // before any check
      const { leaseId } = await this.entryOfLiveSvid(agent);
      entry = await this.workloadEntry(agent, entryId);
      basis = { epoch, requires: [leaseId] };
    } catch (err) {
      this.#metrics.jwtSvid('refused');
      await this.deps.audit.append({ type: 'jwt_svid.refused', actor: agent.spiffeId, details: { audience, agent: agent.spiffeId, reason: refusalCode(err) } });
      throw err;
    }
    return this.mintJwtSvid(entry, audience, basis, agent.spiffeId);
  }

  /** Signs a JWT-SVID for `entry` and commits its lease (the basis: what must still be live) before returning it. */
  private async mintJwtSvid(entry: RegistrationEntry, audience: readonly string[], basis: LeaseBasis, actor: string): Promise<IssuedJwtSvid> {
    const now = this.deps.clock.now();
    const iat = Math.floor(now.getTime() / 1000);
    const exp = iat + Math.min(entry.jwtSvidTtl, this.deps.limits.jwtSvidMaxTtl);
    const jti = this.deps.random.uuid();
    const { jwtKey } = this.deps.authority;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: jwtKey.alg, kid: jwtKey.kid, typ: 'JWT' }) // JWT-SVID §2: alg and kid; typ JWT or JOSE
      .setSubject(entry.spiffeId) // §3.1: sub is the SPIFFE ID
      .setAudience([...audience]) // §3.2
      .setIssuedAt(iat)
      .setExpirationTime(exp) // §3.3
      .setJti(jti)
      .sign(jwtKey.privateKey);
    const expiresAt = new Date(exp * 1000);
    const agent = actor !== entry.spiffeId ? { agent: actor } : {};
    try {
      await this.deps.leases.record(
        { id: jti, kind: 'jwt-svid', spiffeId: entry.spiffeId, entryId: entry.id, audience, issuedAt: new Date(iat * 1000), expiresAt },
        { audit: { type: 'jwt_svid.issued', actor, details: { jti, audience, expiresAt: expiresAt.toISOString(), ...agent } }, basis },
      );
    } catch (err) {
      this.#metrics.jwtSvid('refused');
      const refusal = lostRace(err, actor, 'mtls');
      if (refusal instanceof AttestationError) await this.deps.audit.append({ type: 'jwt_svid.refused', actor, details: { audience, reason: refusalCode(refusal), ...agent } });
      throw refusal;
    }
    this.#metrics.jwtSvid('issued');
    return { token, spiffeId: entry.spiffeId, expiresAt };
  }

  private async issue(entry: RegistrationEntry, publicKey: CryptoKey, details: Record<string, unknown>, basis: LeaseBasis): Promise<Omit<IssuedX509Svid, 'bundle'>> {
    const ttl = Math.min(entry.x509SvidTtl, this.deps.limits.x509SvidMaxTtl);
    const svid = await this.deps.authority.ca.signX509Svid({ spiffeId: entry.spiffeId, publicKey, ttl, dnsNames: entry.dnsNames });
    await this.deps.leases.record(
      {
        id: this.deps.random.uuid(),
        kind: 'x509-svid',
        spiffeId: entry.spiffeId,
        entryId: entry.id,
        serial: svid.serialNumber,
        fingerprint: sha256(new Uint8Array(svid.certificate.rawData), 'hex'),
        issuedAt: svid.notBefore,
        expiresAt: svid.notAfter,
      },
      { audit: { type: 'svid.issued', actor: entry.spiffeId, details: { ...details, entryId: entry.id, serial: svid.serialNumber, notAfter: svid.notAfter.toISOString() } }, basis },
    );
    const chainPem = [svid.certificate, ...svid.intermediates].map((c) => c.toString('pem')).join('\n') + '\n';
    return { spiffeId: entry.spiffeId, svid, chainPem };
  }

  private async entryForToken(entryId: string): Promise<RegistrationEntry> {
    const entry = await this.deps.entries.get(entryId);
    if (!entry) throw new AttestationError('no-matching-entry', 'the entry this join token was made for no longer exists');
    if (!entry.enabled) throw new AttestationError('entry-disabled', `the entry for ${entry.spiffeId} is disabled`);
    return entry;
  }

  /** An enabled entry under this agent; another agent's entry is answered as one that does not exist. */
  private async workloadEntry(agent: PeerSvid, entryId: string): Promise<RegistrationEntry> {
    const entry = await this.deps.entries.get(entryId);
    if (!entry || entry.parentId !== agent.spiffeId) throw new AttestationError('no-matching-entry', `no registration entry ${entryId.slice(0, 64)} under ${agent.spiffeId}`);
    if (!entry.enabled) throw new AttestationError('entry-disabled', `the entry for ${entry.spiffeId} is disabled`);
    return entry;
  }

  /** The most specific enabled entry whose selectors were all attested; a tie is refused, not guessed. */
  private async entryFor(selectors: readonly string[]): Promise<RegistrationEntry> {
    const all = await this.deps.entries.matching(selectors);
    const enabled = all.filter((e) => e.enabled);
    if (enabled.length === 0) {
      if (all.length > 0) throw new AttestationError('entry-disabled', 'the matching registration entry is disabled');
      throw new AttestationError('no-matching-entry', 'no registration entry matches the attested selectors');
    }
    const most = Math.max(...enabled.map((e) => e.selectors.length));
    const best = enabled.filter((e) => e.selectors.length === most);
    if (new Set(best.map((e) => e.spiffeId)).size > 1) {
      throw new AttestationError('no-matching-entry', `${best.length} registration entries for different SPIFFE IDs match equally; make their selectors distinct`);
    }
    return best[0]!;
  }

  /**
   * The entry behind a caller's SVID: the SVID must be live (its exact certificate
   * leased, not expired, not revoked) and its entry must still exist and be enabled.
   */
  private async entryOfLiveSvid(peer: PeerSvid): Promise<{ entry: RegistrationEntry; leaseId: string }> {
    const lease = await this.deps.leases.activeSvid(peer.serial, peer.fingerprint, this.deps.clock.now());
    if (!lease || lease.spiffeId !== peer.spiffeId) {
      throw new AttestationError('client-certificate-required', 'the client certificate is not a current, unrevoked X.509-SVID of this broker');
    }
    const entry = lease.entryId ? await this.deps.entries.get(lease.entryId) : undefined;
    if (!entry || !entry.enabled || entry.spiffeId !== peer.spiffeId) {
      throw new AttestationError('entry-disabled', `the registration entry behind ${peer.spiffeId} is gone or disabled`);
    }
    return { entry, leaseId: lease.id };
  }
}
