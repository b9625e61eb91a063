import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { startBroker, type Broker } from '../../src/broker';
import { createTestStore, type TestStore } from '../support/database';
import { testConfig } from '../support/config';
import { httpsRequest } from '../support/https';

/** Debian's python3 with python3-cryptography, or the first python3 on PATH. */
const PYTHON = ['/usr/bin/python3', 'python3'].find((p) => {
  try {
    execFileSync(p, ['-c', 'import cryptography']);
    return true;
  } catch {
    return false;
  }
});

let store: TestStore;
let broker: Broker;
let caFile: string;
let port: string;
const work = mkdtempSync(join(tmpdir(), 'writ-interop-'));

beforeAll(async () => {
  store = await createTestStore();
  const config = testConfig(store, { WRIT_TRUST_DOMAIN: 'interop.test' });
  broker = await startBroker(config);
  caFile = join(config.caDir, 'ca.crt');
  port = new URL(broker.apiUrl).port;
});
afterAll(async () => {
  await broker?.shutdown();
  await store.drop();
});

/** The PEM leaf the API presents. */
const serverLeafPem = () =>
  new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: Number(port), ca: readFileSync(caFile) }, () => {
      const der = s.getPeerCertificate().raw;
      s.end();
      resolve(`-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`);
    });
    s.on('error', reject);
  });

describe('peers Writ did not write accept its TLS and its bundle', () => {
  // Asynchronously: the broker runs in this process and must keep answering.
  const sClient = async (args: string) =>
    (await promisify(execFile)('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -CAfile ${caFile} ${args} </dev/null 2>&1 || true`])).stdout;

  it('openssl s_client verifies the server SVID against the bundle for localhost and 127.0.0.1', async () => {
    expect(await sClient('-servername localhost -verify_return_error -verify_hostname localhost')).toContain('Verify return code: 0 (ok)');
    expect(await sClient('-verify_return_error -verify_ip 127.0.0.1')).toContain('Verify return code: 0 (ok)');
    expect(await sClient('-verify_hostname elsewhere.example')).toMatch(/Verify return code: 62 \(hostname mismatch\)/);
  });

  (PYTHON ? it : it.skip)('python-cryptography parses the bundle and verifies the server SVID with its authority', async () => {
    const res = await httpsRequest(`${broker.apiUrl}/v1/bundle`, { ca: readFileSync(caFile, 'utf8') });
    writeFileSync(join(work, 'bundle.json'), res.body);
    writeFileSync(join(work, 'leaf.pem'), await serverLeafPem());
    const out = execFileSync(PYTHON!, [join(__dirname, 'verify_bundle.py'), join(work, 'bundle.json'), join(work, 'leaf.pem'), 'interop.test'], { encoding: 'utf8' });
    expect(out.trim()).toBe('ok');
  });
});
