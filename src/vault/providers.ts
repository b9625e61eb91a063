/**
 * Downstream providers (issue 20): the SaaS authorization servers Writ's token vault is an
 * OAuth client of. An admin registers one with its issuer (RFC 8414 or OpenID discovery), Writ's
 * client there and how it authenticates (`client_secret_basic`, `client_secret_post`, or
 * `private_key_jwt`, RFC 7523 §2.2), the scopes it may grant, the RFC 8707 resource to ask for
 * when the provider wants one, and which events also revoke a stored grant at the provider.
 * The client secret (or private key) is sealed before it is stored and is never returned.
 *
 * ```ts
 * await providers.create({ id: 'notes', issuer: 'https://notes.example', client_id: 'writ', client_secret: s, scopes: ['notes:write'] }, actor);
 * ```
 */
import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import type { AuditIn } from '../audit';
import type { SecretSealer } from '../ca/secrets';
import type { Clock } from '../core/clock';
import type { PrismaClient } from '../db/generated/client';
import { remoteKeyUrlProblem } from '../jwt/jwks';
import { CLASSIFICATIONS, type Classification } from '../policy/schema';
import { VaultError } from './errors';

export const PROVIDER_CLIENT_AUTH = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
export type ProviderClientAuth = (typeof PROVIDER_CLIENT_AUTH)[number];

/**
 * Events that also revoke a user's stored grant at the provider (RFC 7009), besides ending its use:
 * `user` (an admin revokes by user), `session` (the user's session changed: CAEP session-revoked,
 * credential-change), `account` (RISC account-disabled), `connector` (a kill switch).
 */
export const GRANT_REVOKE_EVENTS = ['user', 'session', 'account', 'connector'] as const;
export type GrantRevokeEvent = (typeof GRANT_REVOKE_EVENTS)[number];

/** RFC 6749 §3.3 scope-token: printable ASCII but space, `"` and `\`. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/, 'must be an RFC 6749 scope token');
const url = (what: string) =>
  z
    .string()
    .max(2048)
    .superRefine((raw, ctx) => {
      const problem = remoteKeyUrlProblem(raw);
      if (problem) ctx.addIssue({ code: 'custom', message: `${what} ${problem}` });
    });

const providerFields = {
  /** The provider's name in Writ: the `audience` a connector asks for. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and -, at most 63'),
  issuer: url('the issuer'),
  client_id: z.string().min(1).max(512),
  client_auth: z.enum(PROVIDER_CLIENT_AUTH).default('client_secret_basic'),
  /** client_secret_basic and client_secret_post. */
  client_secret: z.string().min(1).max(4096).optional(),
  /** private_key_jwt: a PKCS#8 PEM private key (EC P-256 or RSA). */
  private_key: z.string().min(1).max(16384).optional(),
  scopes: z.array(scopeToken).min(1).max(64),
  /** What the account there holds, as policy sees it: `resource.classification`, `context.classification_level`. */
  classification: z.enum(CLASSIFICATIONS).default('confidential'),
  resource: url('the resource').optional(),
  revoke_on: z.array(z.enum(GRANT_REVOKE_EVENTS)).max(GRANT_REVOKE_EVENTS.length).default([]),
};

/** `POST /v1/admin/providers`: a new provider; exactly the secret its client authentication needs. */
export const providerRequest = z.strictObject(providerFields).superRefine((p, ctx) => {
  const needsKey = p.client_auth === 'private_key_jwt';
  if (needsKey && p.private_key === undefined) ctx.addIssue({ code: 'custom', path: ['private_key'], message: 'private_key_jwt needs private_key (PKCS#8 PEM)' });
  if (!needsKey && p.client_secret === undefined) ctx.addIssue({ code: 'custom', path: ['client_secret'], message: `${p.client_auth} needs client_secret` });
  if (needsKey && p.client_secret !== undefined) ctx.addIssue({ code: 'custom', path: ['client_secret'], message: 'private_key_jwt takes private_key, not client_secret' });
  if (!needsKey && p.private_key !== undefined) ctx.addIssue({ code: 'custom', path: ['private_key'], message: `${p.client_auth} takes client_secret, not private_key` });
  if (p.private_key !== undefined) {
    try {
      const key = createPrivateKey(p.private_key);
      if (key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa') throw new Error(key.asymmetricKeyType);
    } catch {
      ctx.addIssue({ code: 'custom', path: ['private_key'], message: 'must be a PKCS#8 PEM EC or RSA private key' });
    }
  }
});
export type ProviderRequest = z.output<typeof providerRequest>;

/**
 * `vault_providers` in the configuration (WRIT_VAULT_PROVIDERS): providers as the API takes them,
 * the secret or key named by a file (`client_secret_file`, `private_key_file`), never inline.
 * They are registered (or brought up to date) at each start, recorded as by "config".
 */
export const configuredProvidersSchema = z
  .array(
    z
      .strictObject({
        ...Object.fromEntries(Object.entries(providerFields).filter(([k]) => k !== 'client_secret' && k !== 'private_key')),
        client_secret_file: z.string().min(1).optional(),
        private_key_file: z.string().min(1).optional(),
      } as Omit<typeof providerFields, 'client_secret' | 'private_key'> & { client_secret_file: z.ZodOptional<z.ZodString>; private_key_file: z.ZodOptional<z.ZodString> })
      .refine((p) => (p.client_auth === 'private_key_jwt' ? p.private_key_file !== undefined && p.client_secret_file === undefined : p.client_secret_file !== undefined && p.private_key_file === undefined), {
        message: 'name the secret by client_secret_file (client_secret_basic, client_secret_post) or the key by private_key_file (private_key_jwt), not both',
      }),
  )
  .max(100)
  .refine((list) => new Set(list.map((p) => p.id)).size === list.length, { message: 'each provider id once' })
  .transform((list) => list.map(({ client_secret_file, private_key_file, ...p }) => ({ ...p, ...(client_secret_file !== undefined && { clientSecretFile: client_secret_file }), ...(private_key_file !== undefined && { privateKeyFile: private_key_file }) })));
export type ConfiguredProvider = z.output<typeof configuredProvidersSchema>[number];

/** `PATCH /v1/admin/providers/{id}`: a new secret (rotation), scopes, resource or revoke_on. */
export const providerPatch = z.strictObject({
  client_secret: providerFields.client_secret,
  private_key: providerFields.private_key,
  scopes: providerFields.scopes.optional(),
  classification: z.enum(CLASSIFICATIONS).optional(),
  resource: providerFields.resource.nullable(),
  revoke_on: z.array(z.enum(GRANT_REVOKE_EVENTS)).max(GRANT_REVOKE_EVENTS.length).optional(),
});

/** A provider as Writ keeps it; its secret is only ever opened by `ProviderStore.credentials`. */
export interface DownstreamProvider {
  readonly id: string;
  readonly issuer: string;
  readonly clientId: string;
  readonly clientAuth: ProviderClientAuth;
  readonly scopes: readonly string[];
  readonly classification: Classification;
  readonly resource: string | null;
  readonly revokeOn: readonly GrantRevokeEvent[];
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

type Row = Awaited<ReturnType<PrismaClient['downstreamProvider']['findUnique']>> & object;
const view = (r: Row): DownstreamProvider => ({
  id: r.id,
  issuer: r.issuer,
  clientId: r.clientId,
  clientAuth: r.clientAuth as ProviderClientAuth,
  scopes: r.scopes,
  classification: r.classification as Classification,
  resource: r.resource,
  revokeOn: r.revokeOn as GrantRevokeEvent[],
  createdBy: r.createdBy,
  createdAt: r.createdAt,
  updatedAt: r.updatedAt,
});
/** What a provider's sealed client credential is bound to (the AAD): it opens for this provider's row only. */
export const secretBinding = (id: string) => `provider:${id}:client_credential`;

export interface ProviderStoreDeps {
  readonly audit: AuditIn;
  readonly clock: Clock;
  readonly sealer: SecretSealer;
}

/** Providers in the database, their secrets sealed; each change is audited in its transaction. */
export class ProviderStore {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly deps: ProviderStoreDeps,
  ) {}

  async create(input: ProviderRequest, actor: string): Promise<DownstreamProvider> {
    const now = this.deps.clock.now();
    const sealed = this.deps.sealer.seal(secretBinding(input.id), Buffer.from((input.client_secret ?? input.private_key)!, 'utf8'));
    return this.prisma.$transaction(async (tx) => {
      if (await tx.downstreamProvider.findUnique({ where: { id: input.id }, select: { id: true } })) throw new VaultError(409, 'provider-exists', `id: a provider ${input.id} exists already`);
      const row = await tx.downstreamProvider.create({
        data: {
          id: input.id, issuer: input.issuer, clientId: input.client_id, clientAuth: input.client_auth,
          secretKekId: sealed.kekId, secretNonce: Uint8Array.from(sealed.nonce), secretCiphertext: Uint8Array.from(sealed.ciphertext),
          scopes: [...new Set(input.scopes)], classification: input.classification, resource: input.resource ?? null, revokeOn: [...new Set(input.revoke_on)], createdBy: actor, createdAt: now, updatedAt: now,
        },
      });
      await this.deps.audit(tx, { type: 'provider.created', actor, details: { provider: input.id, issuer: input.issuer, clientId: input.client_id, clientAuth: input.client_auth, scopes: row.scopes } });
      return view(row);
    });
  }

  async update(id: string, patch: z.output<typeof providerPatch>, actor: string): Promise<DownstreamProvider> {
    return this.prisma.$transaction(async (tx) => {
      const current = await tx.downstreamProvider.findUnique({ where: { id } });
      if (!current) throw notFound(id);
      const keyAuth = current.clientAuth === 'private_key_jwt';
      if (patch.client_secret !== undefined && keyAuth) throw new VaultError(400, 'invalid-provider', 'client_secret: this provider authenticates with private_key_jwt; send private_key');
      if (patch.private_key !== undefined && !keyAuth) throw new VaultError(400, 'invalid-provider', `private_key: this provider authenticates with ${current.clientAuth}; send client_secret`);
      const secret = patch.client_secret ?? patch.private_key;
      const sealed = secret === undefined ? undefined : this.deps.sealer.seal(secretBinding(id), Buffer.from(secret, 'utf8'));
      const row = await tx.downstreamProvider.update({
        where: { id },
        data: {
          ...(sealed && { secretKekId: sealed.kekId, secretNonce: Uint8Array.from(sealed.nonce), secretCiphertext: Uint8Array.from(sealed.ciphertext) }),
          ...(patch.scopes !== undefined && { scopes: [...new Set(patch.scopes)] }),
          ...(patch.classification !== undefined && { classification: patch.classification }),
          ...(patch.resource !== undefined && { resource: patch.resource }),
          ...(patch.revoke_on !== undefined && { revokeOn: [...new Set(patch.revoke_on)] }),
          updatedAt: this.deps.clock.now(),
        },
      });
      const changed = Object.keys(patch).filter((k) => patch[k as keyof typeof patch] !== undefined).map((k) => (k === 'client_secret' || k === 'private_key' ? 'credential' : k));
      await this.deps.audit(tx, { type: 'provider.updated', actor, details: { provider: id, changed } });
      return view(row);
    });
  }

  /**
   * Brings the configured providers into the database (at start): each is created, or updated
   * where its settings or secret differ, audited as by "config". `secretOf` reads a provider's
   * secret or key file (and fails naming it). Providers added through the API are left alone.
   */
  async syncConfigured(configured: readonly ConfiguredProvider[], secretOf: (p: ConfiguredProvider) => string): Promise<void> {
    for (const p of configured) {
      const secret = secretOf(p);
      const input = providerRequest.parse({ ...Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'clientSecretFile' && k !== 'privateKeyFile')), ...(p.client_auth === 'private_key_jwt' ? { private_key: secret } : { client_secret: secret }) });
      const current = await this.get(p.id);
      if (!current) {
        await this.create(input, 'config');
        continue;
      }
      const same = current.issuer === input.issuer && current.clientId === input.client_id && current.clientAuth === input.client_auth && sameList(current.scopes, input.scopes) && current.classification === input.classification && current.resource === (input.resource ?? null) && sameList(current.revokeOn, input.revoke_on);
      if (same && (await this.credential(p.id)) === secret) continue;
      // A change of issuer, client or method is a new registration: the grants there were made with the old one.
      if (current.issuer !== input.issuer || current.clientId !== input.client_id || current.clientAuth !== input.client_auth) {
        await this.delete(p.id, 'config');
        await this.create(input, 'config');
        continue;
      }
      await this.update(p.id, { ...(input.client_auth === 'private_key_jwt' ? { private_key: secret } : { client_secret: secret }), scopes: input.scopes, classification: input.classification, resource: input.resource ?? null, revoke_on: input.revoke_on }, 'config');
    }
  }

  async get(id: string): Promise<DownstreamProvider | undefined> {
    const row = await this.prisma.downstreamProvider.findUnique({ where: { id } });
    return row ? view(row) : undefined;
  }

  /** The provider, or VaultError 404. */
  async require(id: string): Promise<DownstreamProvider> {
    const found = await this.get(id);
    if (!found) throw notFound(id);
    return found;
  }

  async list(): Promise<DownstreamProvider[]> {
    return (await this.prisma.downstreamProvider.findMany({ orderBy: { id: 'asc' } })).map(view);
  }

  /** Removes the provider and every grant and release of it (the vault forgets them; it does not call the provider). */
  async delete(id: string, actor: string): Promise<{ grants: number }> {
    return this.prisma.$transaction(async (tx) => {
      const grants = await tx.downstreamGrant.count({ where: { providerId: id, revokedAt: null } });
      const gone = await tx.downstreamProvider.deleteMany({ where: { id } });
      if (gone.count === 0) throw notFound(id);
      await this.deps.audit(tx, { type: 'provider.deleted', actor, details: { provider: id, grants } });
      return { grants };
    });
  }

  /** The provider's client credential, opened: for the vault's requests to the provider only. */
  async credential(id: string): Promise<string> {
    const row = await this.prisma.downstreamProvider.findUnique({ where: { id }, select: { secretKekId: true, secretNonce: true, secretCiphertext: true } });
    if (!row) throw notFound(id);
    return this.deps.sealer.open(secretBinding(id), { kekId: row.secretKekId, nonce: row.secretNonce, ciphertext: row.secretCiphertext }).toString('utf8');
  }
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === new Set(b).size && a.every((x) => b.includes(x));
const notFound = (id: string) => new VaultError(404, 'provider-not-found', `no provider ${id.slice(0, 64)}`);
