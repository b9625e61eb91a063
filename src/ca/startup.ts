import type { Logger } from 'pino';
import type { AuditEventInput } from '../audit';
import type { Clock } from '../core/clock';
import type { Random } from '../core/random';
import type { Prisma, PrismaClient } from '../db/generated/client';
import type { TrustBundle } from '../spiffe/bundle';
import { BundleCache } from './bundle-cache';
import { BundleStore, type PublishResult } from './bundle-store';
import { FileCustody, SealedCustody, type KeyCustody, type SealedStart } from './custody';
import { readKek, type Kek } from './kek';
import { existingSecretsKey, loadOrCreateSecretsKey, SecretSealer } from './secrets';
import { CaRotator } from './rotator';
import { recoverInterruptedActivation, type AuthoritySlot } from './slots';
import { loadOrCreateCertificateAuthority, loadOrCreateJwtSigningKey } from './store';

/** Seconds a retired authority stays published beyond the longest credential lifetime. */
export const RETIRED_GRACE_MARGIN = 300;
/** Seconds the served bundle is cached before it is read from the database again. */
const BUNDLE_CACHE_SECONDS = 5;

/** The settings key custody starts from (names as in the broker's Config). */
export interface KeyCustodySettings {
  readonly trustDomain: string;
  readonly caDir: string;
  readonly caTtl: number;
  readonly caReplace: boolean;
  readonly caRotationOverlap: number;
  readonly kekFile: string | undefined;
  readonly kekPreviousFile: string | undefined;
  readonly bundleRefreshHint: number;
  readonly x509SvidMaxTtl: number;
  readonly jwtSvidMaxTtl: number;
}

export interface KeyCustodyDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
}

/** Where start-up writes what it created, imported, resealed and published (AuditLog). */
export interface CustodyAudit {
  append(event: AuditEventInput): Promise<unknown>;
  appendIn(tx: Prisma.TransactionClient, event: AuditEventInput): Promise<unknown>;
}

/** The authorities as started: who signs (the rotator), what is published, and how it is kept. */
export interface StartedCustody {
  readonly kind: KeyCustody['kind'];
  readonly store: BundleStore;
  readonly rotator: CaRotator;
  /** The bundle served, primed with what start-up published. */
  readonly bundle: BundleCache;
  readonly published: TrustBundle;
}

/** Key custody whose settings and files have been read and checked; `start` needs the database. */
export interface PendingCustody {
  readonly kind: KeyCustody['kind'];
  /** Seals the secrets Writ keeps for others (src/ca/secrets.ts): under the KEK, or WRIT_CA_DIR's secrets key. */
  readonly secrets: SecretSealer;
  start(prisma: PrismaClient, audit: CustodyAudit): Promise<StartedCustody>;
}

/**
 * Key custody start-up (SPIRE's `newCA` and `newCASync` in pkg/server/server.go). It reads
 * the key-encryption key when one is set (authority keys sealed in the database, shared by
 * replicas), else loads or creates the files of WRIT_CA_DIR, before anything else opens, so a
 * bad key file stops start-up naming its setting. `start` then reconciles the custody with
 * the bundle in the database, publishes the active authorities and audits what it changed:
 * in the custody's own transaction when it has one (sealed), otherwise right after.
 */
export async function openKeyCustody(settings: KeyCustodySettings, deps: KeyCustodyDeps): Promise<PendingCustody> {
  const { clock, random, logger } = deps;
  const slotOptions = { dir: settings.caDir, trustDomain: settings.trustDomain, caTtl: settings.caTtl, clock, random };
  const started = (prisma: PrismaClient, audit: CustodyAudit) => ({ store: bundleStoreOf(prisma, settings, clock), audit });

  if (settings.kekFile) {
    const keks = readKeks(settings.kekFile, settings.kekPreviousFile, logger);
    return {
      kind: 'sealed',
      // What the vault sealed before: under the previous KEK, or (moving to a KEK) WRIT_CA_DIR's secrets key.
      secrets: new SecretSealer([keks.kek, ...[keks.previous, existingSecretsKey(settings.caDir)].filter((k): k is Kek => k !== undefined && k.id !== keks.kek.id)], random),
      async start(prisma, auditLog) {
        const { store, audit } = started(prisma, auditLog);
        const custody = new SealedCustody({ ...slotOptions, store, kek: keks.kek, previousKek: keks.previous, replace: settings.caReplace });
        const start = await custody.start(async (tx, s) => {
          for (const event of sealedStartEvents(s, keks)) await audit.appendIn(tx, event);
        });
        logger.info({ kek: keks.kek.id, upstream: start.upstream, resealed: start.resealed }, 'authority keys sealed in the database under the KEK');
        // The custody's start already published (and replaced) in its transaction.
        return startRotator({ custody, store, audit, settings, deps }, start.slot, false);
      },
    };
  }

  recoverInterruptedActivation(settings.caDir);
  const ca = await loadOrCreateCertificateAuthority(slotOptions);
  const jwtKey = await loadOrCreateJwtSigningKey({ dir: settings.caDir });
  for (const w of [...(ca.warnings ?? []), ...(jwtKey.warnings ?? [])]) logger.warn({ setting: 'WRIT_CA_DIR' }, w);
  const secretsKey = loadOrCreateSecretsKey(settings.caDir, random);
  return {
    kind: 'files',
    secrets: new SecretSealer([secretsKey], random),
    async start(prisma, auditLog) {
      const { store, audit } = started(prisma, auditLog);
      const active = { ca: ca.value, jwtKey: jwtKey.value };
      // The files were written before the database opened: audited as soon as it is (even if the publish below is refused).
      for (const event of createdEvents(active, { ca: ca.created, jwtKey: jwtKey.created })) await audit.append(event);
      return startRotator({ custody: new FileCustody(slotOptions), store, audit, settings, deps }, active, settings.caReplace);
    },
  };
}

/** Starts the rotation schedule on the active slot and publishes; what publishing changed is audited in its transaction. */
async function startRotator(
  { custody, store, audit, settings, deps }: { custody: KeyCustody; store: BundleStore; audit: CustodyAudit; settings: KeyCustodySettings; deps: KeyCustodyDeps },
  active: AuthoritySlot,
  replace: boolean,
): Promise<StartedCustody> {
  const { rotator, published } = await CaRotator.start(
    { custody, overlap: settings.caRotationOverlap, store, clock: deps.clock, logger: deps.logger, audit: (tx, event) => audit.appendIn(tx, event) },
    active,
    {
      replace,
      inTransaction: async (tx, result) => {
        for (const event of publishedEvents(result)) await audit.appendIn(tx, event);
      },
    },
  );
  const bundle = new BundleCache(store, { clock: deps.clock, maxAgeSeconds: BUNDLE_CACHE_SECONDS, logger: deps.logger });
  bundle.prime(published.bundle);
  return { kind: custody.kind, store, rotator, bundle, published: published.bundle };
}

/**
 * The bundle in the database. A retired authority stays published while anything it signed
 * may be live, plus a margin for a replica's maintenance interval and for clock skew between peers.
 */
function bundleStoreOf(prisma: PrismaClient, settings: KeyCustodySettings, clock: Clock): BundleStore {
  const retiredGrace = Math.max(settings.x509SvidMaxTtl, settings.jwtSvidMaxTtl) + RETIRED_GRACE_MARGIN;
  return new BundleStore(prisma, { trustDomain: settings.trustDomain, refreshHint: settings.bundleRefreshHint, retiredGrace, clock });
}

/** The key-encryption keys: WRIT_KEK_FILE, and during a KEK rotation WRIT_KEK_PREVIOUS_FILE. */
function readKeks(kekFile: string, previousFile: string | undefined, logger: Logger): { kek: Kek; previous?: Kek } {
  const current = readKek(kekFile, 'WRIT_KEK_FILE');
  const previous = previousFile ? readKek(previousFile, 'WRIT_KEK_PREVIOUS_FILE') : undefined;
  for (const w of current.warnings) logger.warn({ setting: 'WRIT_KEK_FILE' }, w);
  for (const w of previous?.warnings ?? []) logger.warn({ setting: 'WRIT_KEK_PREVIOUS_FILE' }, w);
  return { kek: current.kek, previous: previous?.kek };
}

/** What a sealed start changed, in the order it happened: keys imported, resealed, created, then published. */
function sealedStartEvents(start: SealedStart, keks: { kek: Kek; previous?: Kek }): AuditEventInput[] {
  return [
    ...start.imported.map((id) => ({ type: 'authority_key.sealed', actor: 'writ', details: { authority: id, kek: keks.kek.id, from: 'WRIT_CA_DIR' } }) as const),
    ...(start.resealed > 0 ? [{ type: 'kek.rotated', actor: 'writ', details: { kek: keks.kek.id, previous: keks.previous!.id, resealed: start.resealed } } as const] : []),
    ...createdEvents(start.slot, start.created),
    ...(start.published ? publishedEvents(start.published) : []),
  ];
}

function createdEvents(active: AuthoritySlot, created: { readonly ca: boolean; readonly jwtKey: boolean }): AuditEventInput[] {
  return [
    ...(created.ca ? [{ type: 'ca.created', actor: 'writ', details: { subject: active.ca.certificate.subject, notAfter: active.ca.notAfter.toISOString() } } as const] : []),
    ...(created.jwtKey ? [{ type: 'jwt_key.created', actor: 'writ', details: { kid: active.jwtKey.kid } } as const] : []),
  ];
}

function publishedEvents(result: PublishResult): AuditEventInput[] {
  const changes = [
    ['bundle.authority_added', result.added],
    ['bundle.authority_retired', result.retired],
    ['bundle.authority_removed', result.removed],
  ] as const;
  return changes.flatMap(([type, ids]) => ids.map((id) => ({ type, actor: 'writ', details: { authority: id, spiffeSequence: result.bundle.sequence } }) as const));
}
