// Throwaway test PKI for the benchmark harness, built with the `openssl` CLI.
// Everything lives in a caller-supplied directory; nothing here is meant to be
// trusted outside a single benchmark run.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const DAYS = '2';

/** Run openssl in `dir`, failing loudly with its stderr. */
function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Generate a P-256 private key (PKCS#8 PEM) at `dir/name`. */
function ecKey(dir, name) {
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name]);
}

/** Issue a leaf certificate for `name` signed by the CA in `dir`. */
function issueLeaf(dir, name, subject, extensions) {
  ecKey(dir, `${name}.key`);
  openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
  writeFileSync(join(dir, `${name}.ext`), extensions.join('\n') + '\n');
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', DAYS, '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`,
  ]);
}

/**
 * Create a throwaway PKI in `dir` (created if missing): a P-256 CA, a server
 * certificate for IP 127.0.0.1 and DNS localhost (serverAuth EKU) and a client
 * certificate (clientAuth EKU).
 *
 * @param {string} dir working directory for keys, CSRs and certificates
 * @returns {{ caPem: string, serverCertPem: string, serverKeyPem: string,
 *             clientCertPem: string, clientKeyPem: string }} PEM strings
 */
export function makePki(dir) {
  mkdirSync(dir, { recursive: true });
  ecKey(dir, 'ca.key');
  openssl(dir, [
    'req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', DAYS, '-subj', '/CN=writ-bench-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', 'ca.crt',
  ]);
  issueLeaf(dir, 'server', '/CN=127.0.0.1', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  issueLeaf(dir, 'client', '/CN=writ-bench-client', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=clientAuth',
  ]);
  const read = (name) => readFileSync(join(dir, name), 'utf8');
  return {
    caPem: read('ca.crt'),
    serverCertPem: read('server.crt'),
    serverKeyPem: read('server.key'),
    clientCertPem: read('client.crt'),
    clientKeyPem: read('client.key'),
  };
}
