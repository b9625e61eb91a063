import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BrokerClient } from '../cli/client';
import { newKeyAndCsr } from '../cli/csr';
import type { Clock } from '../core/clock';

/** The agent's own X.509-SVID (its node identity) and key, PEM. */
export interface NodeSvid {
  readonly spiffeId: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

interface IssuedSvid {
  spiffe_id: string;
  svid: string;
  expires_at: string;
  bundle: string;
}

export interface NodeIdentityOptions {
  /** The broker's base URL. */
  readonly server: string;
  /** PEM trust anchors for the broker's TLS certificate (the trust bundle). */
  readonly ca: () => string;
  /** Where the agent keeps its key and SVID (0700): a restart needs no new join token. */
  readonly dataDir: string;
  /** A one-time join token, used only when no live SVID is kept. */
  readonly joinToken?: string;
  /**
   * A file holding an OIDC token from an issuer the broker trusts (a projected Kubernetes
   * service-account token): read at each attestation, so the agent can attest again whenever
   * its SVID lapsed, as SPIRE's agent does with its k8s_psat attestor.
   */
  readonly oidcTokenFile?: string;
  /** A certificate (and key files, PEM) of an enterprise PKI the broker trusts: the x509pop attestor's proof is the TLS handshake itself. */
  readonly x509pop?: { readonly certFile: string; readonly keyFile: string };
  readonly clock: Clock;
  readonly logger: Logger;
}

const KEY_FILE = 'agent.key';
const CERT_FILE = 'agent.crt';

/** Written to a temporary file first, then renamed: a crash leaves the old file or the new one, never half of one. */
function writeAtomically(path: string, text: string, mode: number): void {
  writeFileSync(`${path}.tmp`, text, { mode });
  chmodSync(`${path}.tmp`, mode);
  renameSync(`${path}.tmp`, path);
}

/** The token of a token file (a projected token is rewritten in place as it rotates). */
function readToken(path: string): string {
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token === '') throw new Error('it is empty');
    return token;
  } catch (err) {
    throw new Error(`cannot read the OIDC token file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function parse(certPem: string, keyPem: string): NodeSvid {
  const leaf = new X509Certificate(certPem);
  const uri = /URI:(spiffe:\/\/[^,\s]+)/.exec(leaf.subjectAltName ?? '')?.[1];
  if (!uri) throw new Error('the agent\'s certificate names no SPIFFE ID');
  return { spiffeId: uri, certPem, keyPem, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) };
}

/**
 * The agent's node identity, as SPIRE's agent keeps its own: attested once with a join token (the
 * attestors Writ has), kept on disk, renewed over mTLS at half-life; a renewal that fails is
 * retried while the SVID lasts. Its key never leaves the node.
 */
export class NodeIdentity {
  #svid: NodeSvid | undefined;

  constructor(private readonly opts: NodeIdentityOptions) {}

  get svid(): NodeSvid {
    if (!this.#svid) throw new Error('the agent has no node SVID yet');
    return this.#svid;
  }

  /** A client of the broker authenticated with the node SVID. */
  client(): BrokerClient {
    return new BrokerClient({ server: this.opts.server, ca: this.opts.ca(), cert: this.svid.certPem, key: this.svid.keyPem, timeoutMs: 10_000 });
  }

  /** The kept SVID while it is live, else a new one attested with the join token. */
  async start(): Promise<NodeSvid> {
    mkdirSync(this.opts.dataDir, { recursive: true, mode: 0o700 });
    const keyPath = join(this.opts.dataDir, KEY_FILE);
    const certPath = join(this.opts.dataDir, CERT_FILE);
    if (existsSync(keyPath) && existsSync(certPath)) {
      const kept = parse(readFileSync(certPath, 'utf8'), readFileSync(keyPath, 'utf8'));
      if (kept.notAfter > this.opts.clock.now()) {
        this.#svid = kept;
        this.opts.logger.info({ spiffeId: kept.spiffeId, notAfter: kept.notAfter.toISOString() }, 'node SVID loaded');
        return kept;
      }
    }
    await this.attest();
    return this.svid;
  }

  /** Whether the agent can attest again by itself (an OIDC token file; a join token serves once). */
  get canReattest(): boolean {
    return this.opts.oidcTokenFile !== undefined || this.opts.x509pop !== undefined;
  }

  /** POST /v1/attest: with the OIDC token file's current token, else the join token. */
  async attest(): Promise<void> {
    const pop = this.opts.x509pop;
    const evidence = this.opts.oidcTokenFile !== undefined
      ? { attestor: 'oidc', evidence: { token: readToken(this.opts.oidcTokenFile) } }
      : pop
        ? { attestor: 'x509pop', evidence: {} }
        : this.opts.joinToken
          ? { attestor: 'join_token', evidence: { token: this.opts.joinToken } }
          : undefined;
    if (!evidence) throw new Error('the agent has no live node SVID and nothing to attest with: give --join-token (WRIT_AGENT_JOIN_TOKEN), --oidc-token-file (WRIT_AGENT_OIDC_TOKEN_FILE) or --x509pop-cert and --x509pop-key');
    const { keyPem, csrPem } = newKeyAndCsr();
    const anonymous = new BrokerClient({
      server: this.opts.server,
      ca: this.opts.ca(),
      timeoutMs: 10_000,
      // x509pop: the node's certificate is the client certificate of the attest call (RFC 8705-style proof of possession).
      ...(pop && { cert: readFileSync(pop.certFile, 'utf8'), key: readFileSync(pop.keyFile, 'utf8') }),
    });
    const issued = await anonymous.json<IssuedSvid>('POST', '/v1/attest', { ...evidence, csr: csrPem });
    this.#keep(issued.svid, keyPem);
    this.opts.logger.info({ spiffeId: this.svid.spiffeId, attestor: evidence.attestor, notAfter: this.svid.notAfter.toISOString() }, 'node attested');
  }

  /** Whether the SVID has expired (renewal is no longer possible; only attesting again is). */
  expired(): boolean {
    return this.svid.notAfter <= this.opts.clock.now();
  }

  /** Whether half of the SVID's life is spent (SPIRE's agent rotates its own SVID then). */
  dueForRenewal(): boolean {
    const { notBefore, notAfter } = this.svid;
    return this.opts.clock.now().getTime() >= notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) / 2;
  }

  /** Renews over mTLS with the current SVID (POST /v1/svid/renew), a new key each time. */
  async renew(): Promise<void> {
    const { keyPem, csrPem } = newKeyAndCsr();
    const issued = await this.client().json<IssuedSvid>('POST', '/v1/svid/renew', { csr: csrPem });
    this.#keep(issued.svid, keyPem);
    this.opts.logger.info({ spiffeId: this.svid.spiffeId, notAfter: this.svid.notAfter.toISOString() }, 'node SVID renewed');
  }

  #keep(certPem: string, keyPem: string): void {
    const svid = parse(certPem, keyPem);
    writeAtomically(join(this.opts.dataDir, KEY_FILE), keyPem, 0o600);
    writeAtomically(join(this.opts.dataDir, CERT_FILE), certPem, 0o644);
    this.#svid = svid;
  }
}
