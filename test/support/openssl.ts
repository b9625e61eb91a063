import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Runs the openssl CLI (a tool Writ did not write) and returns stdout. Throws with stderr on failure. */
export function openssl(args: string[], opts: { cwd?: string; input?: string } = {}): string {
  return execFileSync('openssl', args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * Creates a root CA and an intermediate CA with openssl in `dir`:
 * root.crt/root.key, int.crt/int.key. The intermediate carries `intSan` if given.
 */
export function opensslCaChain(dir: string, opts: { intSan?: string; keyType?: 'ec' | 'rsa'; days?: number } = {}): void {
  const newkey = opts.keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const days = String(opts.days ?? 30);
  openssl(['req', '-x509', ...newkey, '-nodes', '-keyout', 'root.key', '-out', 'root.crt', '-subj', '/CN=Operator Root', '-days', days,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: dir });
  openssl(['req', '-new', ...newkey, '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Operator Intermediate'], { cwd: dir });
  const ext = ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
  if (opts.intSan) ext.push(`subjectAltName=${opts.intSan}`);
  writeFileSync(join(dir, 'int.ext'), ext.join('\n') + '\n');
  openssl(['x509', '-req', '-in', 'int.csr', '-CA', 'root.crt', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'int.crt', '-days', days, '-extfile', 'int.ext'], { cwd: dir });
}
