/**
 * The SPIFFE Workload API (SPIFFE_Workload_API.md) over gRPC on a Unix domain socket, as the
 * SPIFFE Workload Endpoint (SPIFFE_Workload_Endpoint.md) serves it: the service of
 * `proto/spiffe/workload/workload.proto`, loaded from the file by @grpc/proto-loader and served
 * by @grpc/grpc-js. Each caller is identified out of band by its socket's peer credentials
 * (Workload Endpoint §5), never by anything it sends.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';

/** One X.509-SVID with its key, as the Workload API hands it out. */
export interface X509Identity {
  readonly spiffeId: string;
  /** The leaf first, then any intermediates, DER. */
  readonly chain: readonly Buffer[];
  /** PKCS#8, DER (Workload API: `x509_svid_key`). */
  readonly key: Buffer;
  /** The trust domain's X.509 authorities, DER. */
  readonly bundle: readonly Buffer[];
  /** Tells the workload which SVID is which when it has several (Workload API §5.3 `hint`). */
  readonly hint: string;
}

/** What the agent's cache answers the Workload API with, for a caller's selectors. */
export interface WorkloadIdentitySource {
  /** Whether any entry the agent serves matches these selectors: none means no identity is issued to the caller. */
  entitled(selectors: ReadonlySet<string>): boolean;
  /** The current (unexpired) X.509-SVIDs of the matching entries; empty while they are being fetched. */
  x509Svids(selectors: ReadonlySet<string>): readonly X509Identity[];
  /** X.509 authorities by trust domain (`spiffe://…` → DER certificates). */
  x509Bundles(): ReadonlyMap<string, readonly Buffer[]>;
  /** JWT authorities by trust domain, as JWK Set JSON (SPIFFE Trust Domain and Bundle §4). */
  jwtBundles(): ReadonlyMap<string, Buffer>;
  /** JWT-SVIDs for the matching entries (or the one named), for these audiences. */
  jwtSvids(selectors: ReadonlySet<string>, audience: readonly string[], spiffeId?: string): Promise<readonly { spiffeId: string; token: string; hint: string }[]>;
  /** Verifies a JWT-SVID against the JWT bundle for `audience`; rejects with the reason. */
  validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }>;
  /** Called whenever an SVID, an entry or a bundle changed; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

/** How the caller of a connection is identified: its selectors, from the socket's peer credentials. */
export type CallerAttestor = (socket: Socket) => Promise<readonly string[]>;

export interface WorkloadApiOptions {
  readonly socketPath: string;
  readonly source: WorkloadIdentitySource;
  readonly attest: CallerAttestor;
  readonly logger: Logger;
  /** Where workload.proto is; by default the repository's proto/ directory. */
  readonly protoPath?: string;
}

/** Workload API §3 ("Security header"): every call carries it, or it is refused with InvalidArgument. */
export const SECURITY_HEADER = 'workload.spiffe.io';

const PROTO = join(__dirname, '..', '..', 'proto', 'spiffe', 'workload', 'workload.proto');

/** A gRPC error with its status and message (what the caller sees; nothing internal). */
const status = (code: grpc.status, details: string): Partial<grpc.StatusObject> & Error => Object.assign(new Error(details), { code, details });

type Call = { metadata: grpc.Metadata; getPeer(): string };

/**
 * Serves the Workload API on `socketPath` until closed. The agent accepts each connection itself,
 * attests the caller from the socket, and hands the socket to gRPC: @grpc/grpc-js has no API for
 * Unix peer credentials, so the connection is tagged with an id gRPC reports as the call's peer
 * (`getPeer()`), and the selectors are looked up by it. A caller's identity is thus fixed by the
 * kernel at connect(2), for every call on that connection.
 */
export async function serveWorkloadApi(opts: WorkloadApiOptions): Promise<{ close(): Promise<void> }> {
  const protoPath = opts.protoPath ?? PROTO;
  if (!existsSync(protoPath)) throw new Error(`the Workload API definition is missing: ${protoPath}`);
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const service = (grpc.loadPackageDefinition(definition).SpiffeWorkloadAPI as grpc.ServiceClientConstructor).service;

  const server = new grpc.Server();
  const callers = new Map<string, readonly string[]>();
  let next = 0;

  /** The caller's selectors, once its security header is checked (Workload API §3). */
  const callerOf = (call: Call): ReadonlySet<string> => {
    const header = call.metadata.get(SECURITY_HEADER);
    if (header.length !== 1 || header[0] !== 'true') throw status(grpc.status.INVALID_ARGUMENT, 'security header missing from request');
    const selectors = callers.get(call.getPeer());
    if (!selectors) throw status(grpc.status.INTERNAL, 'the caller of this connection was not attested');
    return new Set(selectors);
  };
  const noIdentity = () => status(grpc.status.PERMISSION_DENIED, 'no identity issued');
  // A server stream ends with a status through its 'error' event (grpc-js sends it as the trailers); destroy() would send none.
  const fail = (call: grpc.ServerWritableStream<unknown, unknown>, err: unknown) => void call.emit('error', asStatus(err, opts.logger, 'stream'));

  /** A server stream that sends `message()` now and on every change, until the caller goes away. */
  const stream = <T>(call: grpc.ServerWritableStream<unknown, T>, message: () => T | undefined) => {
    let last = '';
    const send = () => {
      const m = message();
      if (m === undefined) return;
      const key = JSON.stringify(m);
      if (key === last) return; // only changes are pushed
      last = key;
      call.write(m);
    };
    const unsubscribe = opts.source.onChange(send);
    call.on('cancelled', unsubscribe);
    call.on('close', unsubscribe);
    call.on('error', unsubscribe);
    send();
  };

  /**
   * A stream for a caller entitled to some identity (Workload API §5.2.1, §5.2.2, §6.2.2).
   * `endOnLoss`: an identity removed while the stream is open ends it as one never issued would.
   */
  const entitledStream = <T>(call: grpc.ServerWritableStream<unknown, T>, message: (selectors: ReadonlySet<string>) => T | undefined, endOnLoss = false) => {
    try {
      const selectors = callerOf(call);
      if (!opts.source.entitled(selectors)) throw noIdentity();
      stream(call, () => {
        if (opts.source.entitled(selectors)) return message(selectors);
        if (endOnLoss) fail(call as grpc.ServerWritableStream<unknown, unknown>, noIdentity());
        return undefined;
      });
    } catch (err) {
      fail(call as grpc.ServerWritableStream<unknown, unknown>, err);
    }
  };

  const x509Message = (selectors: ReadonlySet<string>) => {
    const svids = opts.source.x509Svids(selectors);
    if (svids.length === 0) return undefined; // entitled, still being fetched: the first message waits for it
    return {
      svids: svids.map((s) => ({ spiffe_id: s.spiffeId, x509_svid: Buffer.concat([...s.chain]), x509_svid_key: s.key, bundle: Buffer.concat([...s.bundle]), hint: s.hint })),
      crl: [],
      federated_bundles: {},
    };
  };

  server.addService(service, {
    FetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
      entitledStream(call, x509Message, true);
    },
    FetchX509Bundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      entitledStream(call, () => {
        const bundles = opts.source.x509Bundles();
        return bundles.size === 0 ? undefined : { crl: [], bundles: Object.fromEntries([...bundles].map(([td, certs]) => [td, Buffer.concat([...certs])])) };
      });
    },
    FetchJWTBundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      entitledStream(call, () => {
        const bundles = opts.source.jwtBundles();
        return bundles.size === 0 ? undefined : { bundles: Object.fromEntries(bundles) };
      });
    },
    FetchJWTSVID(call: grpc.ServerUnaryCall<{ audience: string[]; spiffe_id: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      void (async () => {
        const selectors = callerOf(call);
        const { audience, spiffe_id: spiffeId } = call.request;
        if (audience.length === 0) throw status(grpc.status.INVALID_ARGUMENT, 'audience must be specified');
        if (!opts.source.entitled(selectors)) throw noIdentity();
        const svids = await opts.source.jwtSvids(selectors, audience, spiffeId === '' ? undefined : spiffeId);
        if (svids.length === 0) throw noIdentity();
        return { svids: svids.map((s) => ({ spiffe_id: s.spiffeId, svid: s.token, hint: s.hint })) };
      })().then((r) => callback(null, r), (err: unknown) => callback(asStatus(err, opts.logger, 'FetchJWTSVID')));
    },
    ValidateJWTSVID(call: grpc.ServerUnaryCall<{ audience: string; svid: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      void (async () => {
        callerOf(call);
        const { audience, svid } = call.request;
        if (audience === '') throw status(grpc.status.INVALID_ARGUMENT, 'audience must be specified');
        if (svid === '') throw status(grpc.status.INVALID_ARGUMENT, 'svid must be specified');
        const valid = await opts.source.validateJwtSvid(svid, audience).catch((err: unknown) => {
          throw status(grpc.status.INVALID_ARGUMENT, `the JWT-SVID is not valid: ${(err as Error).message}`);
        });
        return { spiffe_id: valid.spiffeId, claims: toStruct(valid.claims) };
      })().then((r) => callback(null, r), (err: unknown) => callback(asStatus(err, opts.logger, 'ValidateJWTSVID')));
    },
  });

  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener: NetServer = createServer((socket) => {
    const peer = `writ-agent-caller-${next++}`;
    opts.attest(socket).then(
      (selectors) => {
        if (socket.destroyed) return;
        callers.set(peer, selectors);
        socket.once('close', () => callers.delete(peer));
        // What grpc-js reports as the call's peer for this connection (see above).
        Object.defineProperty(socket, 'remoteAddress', { value: peer, configurable: true });
        injector.injectConnection(socket);
      },
      (err: unknown) => {
        opts.logger.warn({ err: { message: (err as Error).message } }, 'a Workload API caller could not be attested; connection closed');
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(opts.socketPath, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        injector.destroy();
        server.forceShutdown();
        listener.close(() => resolve());
      }),
  };
}

/** An error as the caller sees it: a gRPC status of ours, or Unavailable (details only in the log). */
function asStatus(err: unknown, logger: Logger, method: string): Partial<grpc.StatusObject> {
  const e = err as Partial<grpc.StatusObject>;
  if (typeof e.code === 'number' && typeof e.details === 'string') return e;
  logger.warn({ method, err: { message: (err as Error).message } }, 'a Workload API call failed');
  return status(grpc.status.UNAVAILABLE, 'the agent cannot answer now');
}

/** JSON claims as a google.protobuf.Struct. */
function toStruct(value: Record<string, unknown>): { fields: Record<string, unknown> } {
  const toValue = (v: unknown): unknown => {
    if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
    if (typeof v === 'number') return { numberValue: v };
    if (typeof v === 'string') return { stringValue: v };
    if (typeof v === 'boolean') return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
    return { structValue: toStruct(v as Record<string, unknown>) };
  };
  return { fields: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toValue(v)])) };
}
