import { createPrivateKey, X509Certificate, type JsonWebKey } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { parseSpiffeId } from '../spiffe/id';
import { WritError } from './errors';
import type { JwtAuthority, X509Bundle, X509Svid } from './svid';
import { certificatesToPem, spiffeIdOfCertificate, x509SvidOf } from './svid';
import { WORKLOAD_PROTO_JSON } from './workload-proto';

/** The options of {@link WorkloadApiSource.create}. */
export interface WorkloadApiSourceOptions {
  /** The Workload API endpoint, `unix:///path` (SPIFFE Workload Endpoint §4). Default: `SPIFFE_ENDPOINT_SOCKET`. */
  readonly socket?: string;
  /** How long to wait for the first SVID. Default 30000. */
  readonly timeoutMs?: number;
  /** Delay before reconnecting after the stream broke (doubling, at most 30 s). Default 1000. */
  readonly retryMs?: number;
}

/** What the Workload API's stream last said: every identity, and the bundle of the trust domain. */
export interface WorkloadApiUpdate {
  readonly svids: readonly X509Svid[];
  readonly bundle: X509Bundle;
}

/** A JWT-SVID as FetchJWTSVID answers it. */
export interface WorkloadJwtSvid {
  readonly spiffeId: string;
  readonly token: string;
  readonly hint: string;
}

/** A Workload API call the agent refused (its gRPC status name and details, e.g. PERMISSION_DENIED). */
export class WorkloadApiError extends WritError {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`Workload API: ${code}: ${message}`, options);
    this.name = 'WorkloadApiError';
  }
}

/** Workload API §3: the metadata every call carries. */
const SECURITY_HEADER = 'workload.spiffe.io';

interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}

/** Concatenated DER certificates (the Workload API's `x509_svid` and `bundle` fields) as certificates. */
export function splitDer(blob: Buffer): X509Certificate[] {
  const certs: X509Certificate[] = [];
  let i = 0;
  while (i < blob.length) {
    if (blob[i] !== 0x30) throw new Error('not a DER certificate sequence');
    const first = blob[i + 1]!;
    const [length, header] = first < 0x80 ? [first, 2] : [blob.subarray(i + 2, i + 2 + (first & 0x7f)).reduce((n, b) => n * 256 + b, 0), 2 + (first & 0x7f)];
    certs.push(new X509Certificate(blob.subarray(i, i + header + length)));
    i += header + length;
  }
  return certs;
}

function svidOf(m: X509SvidMessage): X509Svid {
  const certificates = splitDer(m.x509_svid);
  const leaf = certificates[0];
  if (!leaf) throw new Error(`the SVID of ${m.spiffe_id} has no certificate`);
  const privateKey = createPrivateKey({ key: m.x509_svid_key, format: 'der', type: 'pkcs8' });
  if (!leaf.checkPrivateKey(privateKey)) throw new Error(`the key of ${m.spiffe_id} does not match its certificate`);
  const id = spiffeIdOfCertificate(leaf);
  if (id.uri !== m.spiffe_id) throw new Error(`the certificate names ${id.uri}, the message ${m.spiffe_id}`);
  return x509SvidOf(certificates, id, privateKey);
}

/** gRPC's modules, loaded when a WorkloadApiSource is first made: they are optional peers of @writ/sdk. */
function grpcModules(): { grpc: typeof GrpcJs; protoLoader: typeof ProtoLoader } {
  try {
    return { grpc: require('@grpc/grpc-js') as typeof GrpcJs, protoLoader: require('@grpc/proto-loader') as typeof ProtoLoader };
  } catch (err) {
    throw new WritError('WorkloadApiSource needs @grpc/grpc-js and @grpc/proto-loader: npm install @grpc/grpc-js @grpc/proto-loader', { cause: err });
  }
}

/**
 * X.509-SVIDs, bundles and JWT-SVIDs from a SPIFFE Workload API endpoint (SPIFFE Workload API):
 * Writ's `writ agent` or SPIRE's agent, or any other. The X.509 stream is kept open; each message
 * replaces the SVIDs and the bundle (`update` event), and a broken stream is reopened with
 * back-off. The default SVID is the first (Workload API §8).
 *
 * @example
 * const source = await WorkloadApiSource.create(); // SPIFFE_ENDPOINT_SOCKET
 * https.request(url, { cert: source.svid.certificatesPem, key: source.svid.privateKey, ca: source.bundle.x509AuthoritiesPem });
 */
export class WorkloadApiSource extends EventEmitter<{ update: [WorkloadApiUpdate]; error: [Error] }> {
  /** Background failures are emitted only while someone listens: an unobserved one never crashes the process (as X509Source). */
  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #update: WorkloadApiUpdate | undefined;
  #stream: GrpcJs.ClientReadableStream<{ svids: X509SvidMessage[] }> | undefined;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  private constructor(
    private readonly client: GrpcJs.Client & Record<string, (...args: unknown[]) => unknown>,
    private readonly grpc: typeof GrpcJs,
    private readonly retryMs: number,
  ) {
    super();
  }

  /** Connects and resolves once the first X.509-SVID arrived; rejects with a {@link WorkloadApiError} (e.g. PERMISSION_DENIED). */
  static async create(options: WorkloadApiSourceOptions = {}): Promise<WorkloadApiSource> {
    const endpoint = options.socket ?? process.env.SPIFFE_ENDPOINT_SOCKET;
    if (!endpoint) throw new WritError('no Workload API endpoint: pass socket or set SPIFFE_ENDPOINT_SOCKET (unix:///path)');
    const m = /^unix:(?:\/\/)?(\/.+)$/.exec(endpoint);
    if (!m) throw new WritError(`${endpoint}: the Workload API endpoint must be unix:///an/absolute/path`);
    const { grpc, protoLoader } = grpcModules();
    const definition = protoLoader.fromJSON(WORKLOAD_PROTO_JSON as unknown as Parameters<typeof protoLoader.fromJSON>[0], { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const Service = grpc.loadPackageDefinition(definition).SpiffeWorkloadAPI as GrpcJs.ServiceClientConstructor;
    const client = new Service(`unix:${m[1]}`, grpc.credentials.createInsecure()) as unknown as GrpcJs.Client & Record<string, (...args: unknown[]) => unknown>;
    const source = new WorkloadApiSource(client, grpc, options.retryMs ?? 1000);
    try {
      await source.#open(options.timeoutMs ?? 30_000);
    } catch (err) {
      source.close();
      throw err;
    }
    return source;
  }

  /** The default X.509-SVID: the first of {@link svids}. */
  get svid(): X509Svid {
    return this.svids[0]!;
  }

  get svids(): readonly X509Svid[] {
    if (!this.#update) throw new WritError('the source is closed');
    return this.#update.svids;
  }

  /** The trust domain's X.509 authorities, as the last message carried them with the default SVID. */
  get bundle(): X509Bundle {
    if (!this.#update) throw new WritError('the source is closed');
    return this.#update.bundle;
  }

  #metadata(): GrpcJs.Metadata {
    const md = new this.grpc.Metadata();
    md.set(SECURITY_HEADER, 'true');
    return md;
  }

  #open(timeoutMs?: number, attempt = 0): Promise<void> {
    return new Promise((resolve, reject) => {
      let first = true;
      const stream = this.client.FetchX509SVID({}, this.#metadata()) as GrpcJs.ClientReadableStream<{ svids: X509SvidMessage[] }>;
      this.#stream = stream;
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        stream.cancel();
        reject(new WorkloadApiError('DEADLINE_EXCEEDED', `no X.509-SVID within ${timeoutMs} ms`));
      }, timeoutMs);
      stream.on('data', (message: { svids: X509SvidMessage[] }) => {
        try {
          const svids = message.svids.map(svidOf);
          if (svids.length === 0) throw new Error('an X509SVIDResponse without SVIDs');
          const x509Authorities = splitDer(message.svids[0]!.bundle);
          const bundle: X509Bundle = { trustDomain: svids[0]!.id.trustDomain, sequence: undefined, refreshHint: undefined, x509Authorities, x509AuthoritiesPem: certificatesToPem(x509Authorities), jwtAuthorities: [] };
          this.#update = { svids, bundle };
          attempt = 0;
          if (first) {
            first = false;
            clearTimeout(timer);
            resolve();
          } else this.emit('update', this.#update);
        } catch (err) {
          this.#fail(new WorkloadApiError('INVALID_RESPONSE', (err as Error).message, { cause: err }));
        }
      });
      stream.on('error', (err: GrpcJs.ServiceError) => {
        const e = new WorkloadApiError(this.grpc.status[err.code] ?? String(err.code), err.details ?? err.message, { cause: err });
        clearTimeout(timer);
        // The first attempt of create() reports its failure; a reopened stream keeps trying.
        if (first && timeoutMs !== undefined) {
          first = false;
          return reject(e);
        }
        if (first) resolve();
        first = false;
        if (this.#closed || err.code === this.grpc.status.CANCELLED) return;
        // The identity may be gone (PERMISSION_DENIED) or the agent restarting: the SVIDs already held
        // stay until they expire; the stream is reopened with back-off.
        this.#fail(e);
        const delay = Math.min(this.retryMs * 2 ** attempt, 30_000);
        this.#retry = setTimeout(() => void this.#open(undefined, attempt + 1), delay);
        this.#retry.unref?.();
      });
    });
  }

  /** JWT-SVIDs for `audience` (FetchJWTSVID; all the caller's identities, or the one named). */
  fetchJwtSvids(audience: string | readonly string[], spiffeId?: string): Promise<WorkloadJwtSvid[]> {
    const aud = typeof audience === 'string' ? [audience] : [...audience];
    if (aud.length === 0) return Promise.reject(new TypeError('a JWT-SVID needs at least one audience (JWT-SVID §3.2)'));
    return this.#unary<{ svids: { spiffe_id: string; svid: string; hint: string }[] }>('FetchJWTSVID', { audience: aud, spiffe_id: spiffeId ?? '' }).then((r) =>
      r.svids.map((s) => ({ spiffeId: s.spiffe_id, token: s.svid, hint: s.hint })),
    );
  }

  /** The default JWT-SVID for `audience`: the first identity's. */
  async fetchJwtSvid(audience: string | readonly string[], spiffeId?: string): Promise<WorkloadJwtSvid> {
    return (await this.fetchJwtSvids(audience, spiffeId))[0]!;
  }

  /** Asks the agent to validate a JWT-SVID for `audience` (ValidateJWTSVID); rejects when it is not valid. */
  async validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    const r = await this.#unary<{ spiffe_id: string; claims: { fields: Record<string, unknown> } }>('ValidateJWTSVID', { audience, svid: token });
    parseSpiffeId(r.spiffe_id);
    return { spiffeId: r.spiffe_id, claims: fromStruct(r.claims) };
  }

  /** The JWT authorities of each trust domain (the first FetchJWTBundles message). */
  jwtBundles(): Promise<Map<string, JwtAuthority[]>> {
    return new Promise((resolve, reject) => {
      const stream = this.client.FetchJWTBundles({}, this.#metadata()) as GrpcJs.ClientReadableStream<{ bundles: Record<string, Buffer> }>;
      stream.once('data', (m: { bundles: Record<string, Buffer> }) => {
        stream.cancel();
        const out = new Map<string, JwtAuthority[]>();
        for (const [td, jwks] of Object.entries(m.bundles)) {
          const keys = (JSON.parse(jwks.toString('utf8')) as { keys: (JsonWebKey & { kid: string })[] }).keys;
          out.set(td, keys.map(({ kid, ...jwk }) => ({ kid, jwk: jwk as JsonWebKey })));
        }
        resolve(out);
      });
      stream.on('error', (err: GrpcJs.ServiceError) => {
        if (err.code !== this.grpc.status.CANCELLED) reject(new WorkloadApiError(this.grpc.status[err.code] ?? String(err.code), err.details, { cause: err }));
      });
    });
  }

  #unary<T>(method: 'FetchJWTSVID' | 'ValidateJWTSVID', request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      this.client[method]!(request, this.#metadata(), (err: GrpcJs.ServiceError | null, response: T) => {
        if (err) reject(new WorkloadApiError(this.grpc.status[err.code] ?? String(err.code), err.details, { cause: err }));
        else resolve(response);
      });
    });
  }

  /** Ends the stream and the connection. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#stream?.cancel();
    this.client.close();
  }
}

/** A google.protobuf.Struct (as proto-loader decodes it) as plain JSON. */
function fromStruct(struct: { fields: Record<string, unknown> }): Record<string, unknown> {
  // proto-loader (oneofs: true) names the set member of google.protobuf.Value's oneof in `kind`.
  const value = (v: Record<string, unknown>): unknown => {
    switch (v.kind) {
      case 'nullValue':
        return null;
      case 'listValue':
        return ((v.listValue as { values?: Record<string, unknown>[] }).values ?? []).map(value);
      case 'structValue':
        return fromStruct(v.structValue as { fields: Record<string, unknown> });
      default:
        return typeof v.kind === 'string' ? v[v.kind] : undefined;
    }
  };
  return Object.fromEntries(Object.entries(struct.fields ?? {}).map(([k, v]) => [k, value(v as Record<string, unknown>)]));
}
