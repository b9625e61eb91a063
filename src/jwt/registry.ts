/**
 * The configured issuers by name, each with its configuration and its keys: a `jwks_file`
 * read at start-up, or a `jwks_uri` fetched on first use and cached ({@link RemoteJwks}).
 *
 * ```ts
 * const registry = issuerRegistry(config.identityProviders, { clock: systemClock }, 'identity provider');
 * const provider = registry.get(unverifiedIss); // chooses the keys; verifyJwt checks the rest
 * ```
 */
import type { Clock } from '../core/clock';
import type { TrustedIssuer } from './issuer';
import { DiscoveredJwks, RemoteJwks, StaticJwks, readJwksFile, type KeySource, type RemoteJwksOptions } from './jwks';

/** What key sources need: a clock, and for jwks_uri a fetch and its tuning. */
export interface KeySourceDeps {
  readonly clock: Clock;
  /** For jwks_uri; the global fetch by default. */
  readonly fetch?: typeof fetch;
  /** Tuning of jwks_uri fetches (timeout 5 s, 64 KiB, refresh cooldown 30 s, cache age 10 min by default). */
  readonly jwks?: Partial<Omit<RemoteJwksOptions, 'clock' | 'fetch'>>;
}

/** A configured issuer with its keys. */
export interface RegisteredIssuer<C> {
  readonly config: C;
  readonly keys: KeySource;
}

/** Issuers by their exact `iss`. */
export type IssuerRegistry<C> = ReadonlyMap<string, RegisteredIssuer<C>>;

type KeyLocation = Pick<TrustedIssuer, 'issuer' | 'jwksFile' | 'jwksUri' | 'discovery'>;

/**
 * Builds an {@link IssuerRegistry}, reading every jwks_file now; throws an Error naming the
 * issuer (as `label`, e.g. "identity provider") when one is configured twice or its keys are unusable.
 */
export function issuerRegistry<C extends KeyLocation>(configs: readonly C[], deps: KeySourceDeps, label: string): IssuerRegistry<C> {
  const registry = new Map<string, RegisteredIssuer<C>>();
  for (const config of configs) {
    if (registry.has(config.issuer)) throw new Error(`${label} ${config.issuer} is configured more than once`);
    registry.set(config.issuer, { config, keys: keySourceFor(config, deps, label) });
  }
  return registry;
}

/** The keys of one issuer: its jwks_file (read now; an Error naming `label`, the issuer and the file when unusable), its jwks_uri, or discovery's. */
export function keySourceFor(config: KeyLocation, deps: KeySourceDeps, label: string): KeySource {
  if (config.jwksFile !== undefined) {
    try {
      return new StaticJwks(readJwksFile(config.jwksFile));
    } catch (err) {
      throw new Error(`${label} ${config.issuer}: jwks_file ${(err as Error).message}`, { cause: err });
    }
  }
  if (config.jwksUri !== undefined) {
    return new RemoteJwks(config.jwksUri, { ...deps.jwks, clock: deps.clock, fetch: deps.fetch ?? globalThis.fetch });
  }
  if (config.discovery === true) {
    return new DiscoveredJwks(config.issuer, { ...deps.jwks, clock: deps.clock, fetch: deps.fetch ?? globalThis.fetch });
  }
  throw new Error(`${label} ${config.issuer}: set one of jwks_file or jwks_uri, or discovery: true`);
}
