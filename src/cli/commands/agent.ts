import { Option, type Command } from 'commander';
import pino from 'pino';
import { CliFailure } from '../errors';
import { positiveInt } from '../args';
import { globals } from '../context';

/**
 * `writ agent`: the node agent. It attests itself to the broker (a join token, once; its SVID is
 * kept in --data-dir and renewed), and serves the SPIFFE Workload API on a Unix socket, so that
 * go-spiffe, py-spiffe, java-spiffe, spiffe-helper and Envoy get SVIDs from Writ. Runs until
 * SIGTERM or SIGINT.
 */
export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: the SPIFFE Workload API on a Unix socket, for the workload entries under this agent')
    .addOption(new Option('--socket <unix:///path>', 'where to serve the Workload API (SPIFFE_ENDPOINT_SOCKET form)').env('SPIFFE_ENDPOINT_SOCKET').default('unix:///run/writ-agent/public/api.sock'))
    .addOption(new Option('--data-dir <dir>', 'where the agent keeps its key and node SVID').env('WRIT_AGENT_DATA_DIR').default('/var/lib/writ-agent'))
    .addOption(new Option('--join-token <token>', 'a one-time join token for the agent\'s entry (prefer the variable: arguments show in the process list)').env('WRIT_AGENT_JOIN_TOKEN'))
    .addOption(new Option('--oidc-token-file <file>', 'attest with this OIDC token (a projected Kubernetes service-account token), read at each attestation').env('WRIT_AGENT_OIDC_TOKEN_FILE'))
    .addOption(new Option('--x509pop-cert <file>', 'attest with this node certificate (PEM, leaf first) of a PKI the broker trusts').env('WRIT_AGENT_X509POP_CERT'))
    .addOption(new Option('--x509pop-key <file>', 'the key of --x509pop-cert').env('WRIT_AGENT_X509POP_KEY'))
    .addOption(new Option('--kubelet-url <url>', 'attest callers in pods too (k8s: selectors), asking this node\'s kubelet (e.g. https://$NODE_IP:10250)').env('WRIT_AGENT_KUBELET_URL'))
    .addOption(new Option('--kubelet-ca <file>', 'the CA of the kubelet\'s serving certificate').env('WRIT_AGENT_KUBELET_CA'))
    .addOption(new Option('--kubelet-token-file <file>', 'the token the kubelet authorizes the agent by').env('WRIT_AGENT_KUBELET_TOKEN_FILE').default('/var/run/secrets/kubernetes.io/serviceaccount/token'))
    .addOption(new Option('--sync-interval <ms>', 'how often to ask the broker for entries, the bundle and due SVIDs (at least 100)').env('WRIT_AGENT_SYNC_INTERVAL_MS').argParser(positiveInt).default(5000))
    .action(async (o: { socket: string; dataDir: string; joinToken?: string; oidcTokenFile?: string; x509popCert?: string; x509popKey?: string; kubeletUrl?: string; kubeletCa?: string; kubeletTokenFile: string; syncInterval: number }, cmd: Command) => {
      const g = globals(cmd);
      if (o.syncInterval < 100) throw new CliFailure('writ agent: --sync-interval is at least 100 ms');
      if ((o.x509popCert === undefined) !== (o.x509popKey === undefined)) throw new CliFailure('writ agent: --x509pop-cert and --x509pop-key go together');
      if (o.kubeletUrl && !o.kubeletCa) throw new CliFailure('writ agent: --kubelet-url needs --kubelet-ca (WRIT_AGENT_KUBELET_CA): the kubelet\'s certificate is verified, never trusted blindly');
      if (!g.ca) throw new CliFailure('writ agent needs --ca (or WRIT_CA): the trust bundle that signs the broker\'s certificate');
      const { readCa, socketPathOf, startAgent } = await import('../../agent');
      const logger = pino({ base: { service: 'writ-agent' } });
      let agent;
      try {
        agent = await startAgent({
          server: g.server,
          caPem: readCa(g.ca),
          socketPath: socketPathOf(o.socket),
          dataDir: o.dataDir,
          ...(o.joinToken && { joinToken: o.joinToken }),
          ...(o.oidcTokenFile && { oidcTokenFile: o.oidcTokenFile }),
          ...(o.x509popCert && o.x509popKey && { x509pop: { certFile: o.x509popCert, keyFile: o.x509popKey } }),
          ...(o.kubeletUrl && { kubelet: { url: o.kubeletUrl, caPem: readCa(o.kubeletCa!), tokenFile: o.kubeletTokenFile } }),
          syncIntervalMs: o.syncInterval,
          logger,
        });
      } catch (err) {
        throw new CliFailure(`writ agent: ${(err as Error).message}`);
      }
      const running = agent;
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'stopping');
          void running.close().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}
