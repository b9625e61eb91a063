import { InvalidArgumentError, type Command } from 'commander';
import { adminClient, globals, readText, usage } from '../context';
import { fields, print, table } from '../output';

/** A downstream provider of the token vault as the admin API shows it (never its secret). */
interface Provider {
  id: string;
  issuer: string;
  client_id: string;
  client_auth: string;
  scopes: string[];
  classification: string;
  resource: string | null;
  revoke_on: string[];
  created_by: string;
  created_at: string;
  updated_at: string;
}

interface Grant {
  id: string;
  provider: string;
  user: { iss: string; sub: string };
  scopes: string[];
  created_at: string;
  refreshed_at: string | null;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
const AUTH = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
const clientAuth = (value: string): string => {
  if (!AUTH.includes(value)) throw new InvalidArgumentError(`expected one of ${AUTH.join(', ')}`);
  return value;
};

const showProvider = (p: Provider) =>
  fields([
    ['id', p.id],
    ['issuer', p.issuer],
    ['client_id', p.client_id],
    ['client_auth', p.client_auth],
    ['scopes', p.scopes],
    ['classification', p.classification],
    ['resource', p.resource ?? '-'],
    ['revoke_on', p.revoke_on.length > 0 ? p.revoke_on : '-'],
    ['created_by', p.created_by],
    ['updated_at', p.updated_at],
  ]);

/** The secret or key from a file (never from the command line, where `ps` shows it), trimmed of its final newline. */
const secretFrom = (path: string, what: string): string => readText(path, what).replace(/\r?\n$/, '');

/** `writ provider`: the token vault's SaaS authorization servers, and the users' grants there. */
export function registerProvider(program: Command): void {
  const provider = program.command('provider').description('the token vault: SaaS authorization servers Writ is a client of, and the users\' grants there');

  provider
    .command('add')
    .description('register a SaaS authorization server (its secret is sealed and never shown again)')
    .argument('<id>', 'its name in Writ: the audience connectors ask for, e.g. github')
    .requiredOption('--issuer <url>', 'its issuer (RFC 8414 or OpenID discovery)')
    .requiredOption('--client-id <id>', 'Writ\'s client there')
    .option('--client-auth <method>', 'client_secret_basic, client_secret_post or private_key_jwt', clientAuth, 'client_secret_basic')
    .option('--client-secret-file <file>', 'a file holding the client secret')
    .option('--private-key-file <file>', 'private_key_jwt: a PKCS#8 PEM file')
    .requiredOption('--scope <scope>', 'a scope it may grant (repeat for several)', collect)
    .option('--classification <level>', 'what the accounts there hold, as policy sees it', 'confidential')
    .option('--resource <uri>', 'the RFC 8707 resource to ask tokens for, when the provider wants one')
    .option('--revoke-on <event>', 'also revoke stored grants at the provider on: user, session, account, connector (repeat)', collect)
    .action(async (id: string, o: { issuer: string; clientId: string; clientAuth: string; clientSecretFile?: string; privateKeyFile?: string; scope: string[]; classification: string; resource?: string; revokeOn?: string[] }, cmd: Command) => {
      const keyAuth = o.clientAuth === 'private_key_jwt';
      if (keyAuth ? o.privateKeyFile === undefined : o.clientSecretFile === undefined) usage(cmd, keyAuth ? 'private_key_jwt needs --private-key-file' : `${o.clientAuth} needs --client-secret-file`);
      if (keyAuth ? o.clientSecretFile !== undefined : o.privateKeyFile !== undefined) usage(cmd, keyAuth ? 'private_key_jwt takes --private-key-file, not --client-secret-file' : `${o.clientAuth} takes --client-secret-file, not --private-key-file`);
      const body = {
        id, issuer: o.issuer, client_id: o.clientId, client_auth: o.clientAuth, scopes: o.scope, classification: o.classification,
        ...(keyAuth ? { private_key: secretFrom(o.privateKeyFile!, 'private key file') } : { client_secret: secretFrom(o.clientSecretFile!, 'client secret file') }),
        ...(o.resource !== undefined && { resource: o.resource }),
        ...(o.revokeOn !== undefined && { revoke_on: o.revokeOn }),
      };
      const created = await adminClient(cmd).json<Provider>('POST', '/v1/admin/providers', body);
      print(globals(cmd).output, created, () => showProvider(created));
    });

  provider
    .command('list')
    .description('list the providers')
    .action(async (_o: unknown, cmd: Command) => {
      const { providers } = await adminClient(cmd).json<{ providers: Provider[] }>('GET', '/v1/admin/providers');
      print(globals(cmd).output, { providers }, () =>
        table(providers, [
          ['ID', (p) => p.id],
          ['ISSUER', (p) => p.issuer],
          ['SCOPES', (p) => p.scopes],
          ['CLASS', (p) => p.classification],
        ]),
      );
    });

  provider
    .command('show')
    .description('show one provider')
    .argument('<id>', 'the provider id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const p = await adminClient(cmd).json<Provider>('GET', `/v1/admin/providers/${encodeURIComponent(id)}`);
      print(globals(cmd).output, p, () => showProvider(p));
    });

  provider
    .command('update')
    .description('rotate the secret or key, or change scopes, classification, resource or revoke_on')
    .argument('<id>', 'the provider id')
    .option('--client-secret-file <file>', 'a file holding the new client secret')
    .option('--private-key-file <file>', 'a PKCS#8 PEM file with the new key')
    .option('--scope <scope>', 'a scope of the new list (repeat for several)', collect)
    .option('--classification <level>', 'a new classification')
    .option('--revoke-on <event>', 'an event of the new list: user, session, account, connector (repeat)', collect)
    .action(async (id: string, o: { clientSecretFile?: string; privateKeyFile?: string; scope?: string[]; classification?: string; revokeOn?: string[] }, cmd: Command) => {
      const body = {
        ...(o.clientSecretFile !== undefined && { client_secret: secretFrom(o.clientSecretFile, 'client secret file') }),
        ...(o.privateKeyFile !== undefined && { private_key: secretFrom(o.privateKeyFile, 'private key file') }),
        ...(o.scope !== undefined && { scopes: o.scope }),
        ...(o.classification !== undefined && { classification: o.classification }),
        ...(o.revokeOn !== undefined && { revoke_on: o.revokeOn }),
      };
      if (Object.keys(body).length === 0) usage(cmd, 'name at least one thing to change');
      const p = await adminClient(cmd).json<Provider>('PATCH', `/v1/admin/providers/${encodeURIComponent(id)}`, body);
      print(globals(cmd).output, p, () => showProvider(p));
    });

  provider
    .command('remove')
    .description('remove a provider and the grants the vault holds there')
    .argument('<id>', 'the provider id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await adminClient(cmd).json('DELETE', `/v1/admin/providers/${encodeURIComponent(id)}`);
      print(globals(cmd).output, { removed: id }, () => `removed provider ${id}\n`);
    });

  provider
    .command('grants')
    .description('list the users\' live grants (never their tokens)')
    .option('--provider <id>', 'at one provider only')
    .action(async (o: { provider?: string }, cmd: Command) => {
      const { grants } = await adminClient(cmd).json<{ grants: Grant[] }>('GET', `/v1/admin/grants${o.provider !== undefined ? `?provider=${encodeURIComponent(o.provider)}` : ''}`);
      print(globals(cmd).output, { grants }, () =>
        table(grants, [
          ['ID', (g) => g.id],
          ['PROVIDER', (g) => g.provider],
          ['USER', (g) => g.user.sub],
          ['SCOPES', (g) => g.scopes],
          ['REFRESHED', (g) => g.refreshed_at ?? '-'],
        ]),
      );
    });

  provider
    .command('revoke-grant')
    .description('revoke a user\'s grant: no more releases, and revoked at the provider (RFC 7009)')
    .argument('<grant-id>', 'the grant id (writ provider grants)')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .action(async (id: string, o: { reason: string }, cmd: Command) => {
      await adminClient(cmd).json('DELETE', `/v1/admin/grants/${encodeURIComponent(id)}?reason=${encodeURIComponent(o.reason)}`);
      print(globals(cmd).output, { revoked: id }, () => `revoked grant ${id}\n`);
    });
}
