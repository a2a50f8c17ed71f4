#!/usr/bin/env node
// Validates Kubernetes manifests offline against the API schemas: the built-in kinds with the
// npm package kubernetes-models, ServiceMonitor and PrometheusRule with
// @kubernetes-models/prometheus-operator (both generated from the upstream OpenAPI and CRD
// schemas; dev dependencies of the test workspace). No cluster needed. kustomization files
// are skipped (they are not API objects); every other document must name a known
// apiVersion/kind and match its schema (types, required fields, enums, patterns). The schemas
// allow unknown fields, so a misspelt optional field is not caught here: the tests in
// test/deploy/ check the fields that matter by name.
//
//   node scripts/validate-kubernetes.mjs FILE...   (YAML, several documents each; - = stdin)
//
// Prints one line per document; exits 1 when any is invalid, 2 on a usage or parse error.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { parseAllDocuments } = require('yaml');

/** Module that holds the model of `apiVersion`/`kind`, or undefined for an unknown group. */
export function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') {
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  }
  if (group === '') return `kubernetes-models/${version}/${kind}`;
  // Built-in groups: apps, policy, batch, autoscaling, *.k8s.io.
  if (!group.includes('.') || group.endsWith('.k8s.io')) {
    return `kubernetes-models/${group}/${version}/${kind}`;
  }
  return undefined;
}

/** What validateDocument answers for a kustomization file. */
export const SKIPPED = Symbol('skipped');

/** Kinds of kustomize's own files, which are not API objects. */
const KUSTOMIZE = new Set(['Kustomization', 'Component']);

/**
 * Validates one parsed document. Returns undefined when it is valid, SKIPPED for a kustomization
 * file, else the reasons it is not.
 */
export async function validateDocument(doc) {
  if (doc === null || typeof doc !== 'object') return 'not a mapping';
  const { apiVersion, kind } = doc;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return 'apiVersion and kind must be strings';
  }
  if (KUSTOMIZE.has(kind) && apiVersion.startsWith('kustomize.config.k8s.io/')) return SKIPPED;
  const mod = modelModule(apiVersion, kind);
  let Model;
  try {
    if (!mod) throw new Error('unknown group');
    Model = (await import(mod))[kind];
    if (typeof Model !== 'function') throw new Error(`no ${kind} in ${mod}`);
  } catch {
    return `no schema for ${apiVersion} ${kind}`;
  }
  if (!doc.metadata?.name) return 'metadata.name is missing';
  try {
    new Model(doc).validate();
    return undefined;
  } catch (e) {
    return String(e.message ?? e);
  }
}

/** Validates every document of YAML `text`; one result per document. */
export async function validateText(text, source = '<text>') {
  const out = [];
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length > 0) {
      out.push({ source, what: '(parse)', error: d.errors.map((e) => e.message).join('; ') });
      continue;
    }
    const doc = d.toJS();
    if (doc === null || doc === undefined) continue;
    const what = `${doc.kind ?? '?'}/${doc.metadata?.name ?? '?'}`;
    out.push({ source, what, error: await validateDocument(doc) });
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error('usage: validate-kubernetes.mjs FILE... (- for stdin)');
    process.exit(2);
  }
  let bad = 0;
  let n = 0;
  let skipped = 0;
  for (const f of files) {
    const results = await validateText(readFileSync(f === '-' ? 0 : f, 'utf8'), f);
    for (const r of results) {
      if (r.error === SKIPPED) {
        skipped++;
        continue;
      }
      n++;
      if (r.error) {
        bad++;
        console.log(`FAIL ${r.source} ${r.what}: ${r.error}`);
      }
    }
  }
  console.log(
    `${n - bad}/${n} documents valid${skipped ? ` (${skipped} kustomization files skipped)` : ''}`,
  );
  process.exit(bad > 0 ? 1 : 0);
}
