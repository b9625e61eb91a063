import { X509Certificate } from 'node:crypto';
import { get } from 'node:http';
import { Option, type Command } from 'commander';
import { adminClient, anonymousClient, globals, usage } from '../context';
import { BrokerUnreachable, CliFailure, oneLine } from '../errors';
import { fields, print, table } from '../output';

/** A key of the SPIFFE bundle document (SPIFFE Trust Domain and Bundle §4). */
interface BundleKey {
  use: string;
  kid?: string;
  kty?: string;
  crv?: string;
  x5c?: string[];
}

interface Listener {
  url: string;
  reachable: boolean;
  error?: string;
}

interface Status {
  ready: boolean;
  readiness: { status: string; reason?: string } | null;
  api: Listener;
  ops: Listener;
  spiffe_sequence: number | null;
  x509_authorities: { subject: string; not_after: string; seconds_left: number }[];
  jwt_authorities: { kid: string | null; kty: string | null; crv: string | null }[];
  policy_version: number | null;
  policy_error?: string;
}

/** GET <ops>/readyz over plain HTTP: the status code and the JSON answer, or the error when nothing answers. */
function readyz(ops: string, timeoutMs = 10_000): Promise<{ status: number; body: { status?: string; reason?: string } }> {
  return new Promise((resolve, reject) => {
    const req = get(`${ops.replace(/\/+$/, '')}/readyz`, { agent: false, headers: { accept: 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text = (text + c).slice(0, 4096)));
      res.on('end', () => {
        let body: { status?: string; reason?: string } = {};
        try {
          body = JSON.parse(text) as typeof body;
        } catch {
          // not JSON: the status code alone says it
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

const secondsLeft = (notAfter: Date, now: number) => Math.floor((notAfter.getTime() - now) / 1000);

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('is the broker ready: readiness (ops /readyz), both listeners, CA and JWT keys, the policy version (with admin credentials)')
    .addOption(new Option('--ops <url>', 'the broker\'s ops listener (plain HTTP)').env('WRIT_OPS').default('http://127.0.0.1:9090'))
    .addHelpText('after', '\nExit status: 0 ready; 1 not ready; 3 a listener cannot be reached.')
    .action(async (o: { ops: string }, cmd: Command) => {
      let opsUrl: URL;
      try {
        opsUrl = new URL(o.ops);
      } catch {
        usage(cmd, `--ops ${JSON.stringify(o.ops)} is not a URL`);
      }
      if (opsUrl.protocol !== 'http:') usage(cmd, '--ops must be an http:// URL: the ops listener is plain HTTP');
      const g = globals(cmd);
      const client = anonymousClient(cmd);
      const status: Status = {
        ready: false,
        readiness: null,
        api: { url: client.server, reachable: false },
        ops: { url: o.ops, reachable: false },
        spiffe_sequence: null,
        x509_authorities: [],
        jwt_authorities: [],
        policy_version: null,
      };

      const [ready, bundle] = await Promise.allSettled([
        readyz(o.ops),
        client.json<{ keys: BundleKey[]; spiffe_sequence?: number }>('GET', '/v1/bundle'),
      ]);
      if (ready.status === 'fulfilled') {
        status.ops.reachable = true;
        status.readiness = { status: ready.value.body.status ?? `HTTP ${ready.value.status}`, ...(ready.value.body.reason !== undefined && { reason: ready.value.body.reason }) };
      } else status.ops.error = oneLine((ready.reason as Error).message);
      if (bundle.status === 'fulfilled') {
        status.api.reachable = true;
        const now = Date.now();
        status.spiffe_sequence = bundle.value.spiffe_sequence ?? null;
        for (const k of bundle.value.keys) {
          if (k.use === 'x509-svid' && k.x5c?.[0] !== undefined) {
            const cert = new X509Certificate(Buffer.from(k.x5c[0], 'base64'));
            const notAfter = new Date(cert.validTo);
            status.x509_authorities.push({ subject: oneLine(cert.subject), not_after: notAfter.toISOString(), seconds_left: secondsLeft(notAfter, now) });
          } else if (k.use === 'jwt-svid') status.jwt_authorities.push({ kid: k.kid ?? null, kty: k.kty ?? null, crv: k.crv ?? null });
        }
      } else status.api.error = oneLine((bundle.reason as Error).message);

      // The policy version needs the admin API: only when a credential is given.
      if (status.api.reachable && (g.token !== undefined || g.svidDir !== undefined)) {
        try {
          status.policy_version = (await adminClient(cmd).json<{ version: number }>('GET', '/v1/admin/policies')).version;
        } catch (err) {
          status.policy_error = oneLine((err as Error).message);
        }
      }
      status.ready = status.api.reachable && ready.status === 'fulfilled' && ready.value.status === 200;

      print(g.output, status, () =>
        [
          fields([
            ['ready', status.ready],
            ['readiness', status.readiness ? `${status.readiness.status}${status.readiness.reason ? ` (${status.readiness.reason})` : ''}` : 'unknown'],
            ['api', `${status.api.url} ${status.api.reachable ? 'reachable' : `unreachable: ${status.api.error}`}`],
            ['ops', `${status.ops.url} ${status.ops.reachable ? 'reachable' : `unreachable: ${status.ops.error}`}`],
            ['spiffe_sequence', status.spiffe_sequence],
            ['policy_version', status.policy_version ?? (status.policy_error ? `unknown: ${status.policy_error}` : 'unknown (needs admin credentials)')],
          ]),
          status.x509_authorities.length > 0 ? `\n${table(status.x509_authorities, [['X.509 AUTHORITY', (a) => a.subject], ['NOT AFTER', (a) => a.not_after], ['SECONDS LEFT', (a) => a.seconds_left]])}` : '',
          status.jwt_authorities.length > 0 ? `\n${table(status.jwt_authorities, [['JWT KEY', (a) => a.kid], ['KTY', (a) => a.kty], ['CRV', (a) => a.crv]])}` : '',
        ].join(''),
      );

      // The report is on stdout either way; the exit status (and one line on stderr) says what it means.
      if (!status.ops.reachable || !status.api.reachable) {
        const which = [!status.api.reachable && `the API (${status.api.error})`, !status.ops.reachable && `the ops listener (${status.ops.error})`].filter(Boolean).join(' and ');
        throw new BrokerUnreachable(`cannot reach ${which}`);
      }
      if (!status.ready) throw new CliFailure(`not ready: ${status.readiness?.status ?? 'unknown'}${status.readiness?.reason ? ` (${status.readiness.reason})` : ''}`);
    });
}
