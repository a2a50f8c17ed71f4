import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** deploy/kubernetes. */
export const K8S_DIR = join(REPO_ROOT, 'deploy/kubernetes');

// `yaml` is a dependency of @dcache/proxy (its config file); resolved from there.
const requireFromProxy = createRequire(createRequire(import.meta.url).resolve('@dcache/proxy'));
const YAML = requireFromProxy('yaml') as typeof import('yaml');

/** A Kubernetes object as parsed from YAML, with the file it came from. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are free-form; tests read them by path.
  spec?: any;
  data?: Record<string, string>;
  /** File relative to the repository root. */
  file: string;
}

/** Every .yaml file under `dir`, sorted. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? yamlFiles(p) : n.endsWith('.yaml') ? [p] : [];
    })
    .sort();
}

/** Every document of a multi-document YAML text. */
export function parseDocs(text: string, file: string): K8sObject[] {
  return YAML.parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((d): d is K8sObject => d !== null && typeof d === 'object')
    .map((d) => ({ ...d, file }));
}

/** The API objects (no kustomization files) of the base and of a component or overlay folder. */
export function objectsIn(...dirs: string[]): K8sObject[] {
  return dirs
    .flatMap((d) => yamlFiles(join(K8S_DIR, d)))
    .flatMap((f) => parseDocs(readFileSync(f, 'utf8'), relative(REPO_ROOT, f)))
    .filter((o) => !['Kustomization', 'Component'].includes(o.kind));
}

/** The one object of `kind` named `name`; throws when there is not exactly one. */
export function one(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter(
    (o) => o.kind === kind && (name === undefined || o.metadata.name === name),
  );
  if (found.length !== 1) throw new Error(`want one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0]!;
}

/** True when every label of `selector` is on `labels`. */
export function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** One container env entry. */
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string };
    fieldRef?: { fieldPath: string };
  };
}

/**
 * `value` with Kubernetes' `$(VAR)` references replaced from `vars` (the container's earlier
 * env entries); an unknown reference stays as written, as Kubernetes leaves it.
 */
export function expandEnv(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => vars[n] ?? m);
}

/**
 * `$(VAR)` references of a container's env that Kubernetes would leave unexpanded: it expands
 * only variables defined earlier in the same list. Returns `NAME -> $(VAR)` strings.
 */
export function unexpandedRefs(env: readonly EnvVar[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const e of env) {
    for (const m of (e.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
      if (!seen.has(m[1]!)) out.push(`${e.name} -> $(${m[1]})`);
    }
    seen.add(e.name);
  }
  return out;
}
