import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './stack.js';

/** Folder of the dashboards Grafana provisions (compose mounts it). */
export const DASHBOARD_DIR = join(REPO_ROOT, 'docker/grafana/dashboards');

/** One PromQL expression of one dashboard panel target. */
export interface PanelExpr {
  dashboard: string;
  panel: string;
  refId: string;
  /** The expression as written in the JSON. */
  raw: string;
  /** The expression with Grafana variables substituted, ready for Prometheus. */
  expr: string;
}

interface Panel {
  title?: string;
  panels?: Panel[];
  targets?: { expr?: string; refId?: string }[];
}

interface TemplateVar {
  name: string;
  type?: string;
}

/** Grafana's built-in interval variables and what a 1 s-scrape test Prometheus gets for them. */
const BUILTINS: Record<string, string> = {
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

/**
 * Replaces Grafana variables in `expr`: interval built-ins by fixed durations, template
 * variables (query, custom, …) by "match everything" — `label="$v"` becomes `label=~".*"`,
 * any other `$v` becomes `.*`. Datasource variables are left alone (never in PromQL).
 */
export function substituteVariables(expr: string, vars: readonly TemplateVar[]): string {
  let out = expr;
  for (const [name, value] of Object.entries(BUILTINS)) {
    out = out.replace(new RegExp(`\\$\\{${name}\\}|\\$${name}\\b`, 'g'), value);
  }
  for (const v of vars) {
    if (v.type === 'datasource') continue;
    const ref = `(?:\\$\\{${v.name}(?::\\w+)?\\}|\\$${v.name}\\b|\\[\\[${v.name}\\]\\])`;
    out = out.replace(new RegExp(`(\\w+)\\s*(=~|=|!~|!=)\\s*"${ref}"`, 'g'), (_m, label, op) =>
      op.startsWith('!') ? `${label}!~"^$"` : `${label}=~".*"`,
    );
    out = out.replace(new RegExp(ref, 'g'), '.*');
  }
  return out;
}

/** Every panel of a dashboard, rows' nested panels included, depth first. */
function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every `expr` of every target of every panel of every dashboard JSON in {@link DASHBOARD_DIR}. */
export function dashboardExprs(dir = DASHBOARD_DIR): PanelExpr[] {
  const out: PanelExpr[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const d = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      panels?: Panel[];
      rows?: { panels?: Panel[] }[];
      templating?: { list?: TemplateVar[] };
    };
    const vars = d.templating?.list ?? [];
    // Schema-1 dashboards keep panels under rows[].panels; current ones under panels[].
    const roots = [...(d.panels ?? []), ...(d.rows ?? []).flatMap((r) => r.panels ?? [])];
    for (const p of allPanels(roots)) {
      for (const t of p.targets ?? []) {
        if (typeof t.expr !== 'string') continue;
        out.push({
          dashboard: file,
          panel: p.title ?? '(untitled)',
          refId: t.refId ?? '?',
          raw: t.expr,
          expr: substituteVariables(t.expr, vars),
        });
      }
    }
  }
  return out;
}
