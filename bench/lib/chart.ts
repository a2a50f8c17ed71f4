/** A dependency-free SVG chart of a run: per case, throughput bars (left) and p99 bars (right). */
import { fmt } from './stats.js';
import type { Bar, CaseResult } from './types.js';

const W = 980;
const PANEL = W / 2;
const LABEL_W = 210;
const BAR_W = 180;
const BAR_H = 16;
const GAP = 5;
const HEAD = 24;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(x: number, y: number, title: string, unit: string, bars: readonly Bar[]): string {
  const finite = bars.filter((b) => Number.isFinite(b.value));
  const max = Math.max(1e-9, ...finite.map((b) => b.value));
  const parts: string[] = [
    `<text x="${x + 8}" y="${y + 14}" class="h">${esc(title)} (${esc(unit)})</text>`,
  ];
  bars.forEach((b, i) => {
    const by = y + HEAD + i * (BAR_H + GAP);
    const len = Number.isFinite(b.value) ? Math.max(1, (b.value / max) * BAR_W) : 0;
    const ours = b.label.startsWith('dcache');
    parts.push(
      `<text x="${x + LABEL_W - 6}" y="${by + 12}" class="l">${esc(b.label)}</text>`,
      `<rect x="${x + LABEL_W}" y="${by}" width="${len.toFixed(1)}" height="${BAR_H}" class="${ours ? 'o' : 'p'}"/>`,
      `<text x="${x + LABEL_W + len + 4}" y="${by + 12}" class="v">${Number.isFinite(b.value) ? fmt(b.value) : 'n/a'}</text>`,
    );
  });
  return parts.join('\n');
}

/** The chart of a run's cases. */
export function chartSvg(results: readonly CaseResult[], subtitle: string): string {
  const parts: string[] = [];
  let y = 40;
  for (const c of results) {
    const t = c.chart.throughput;
    const p = c.chart.p99;
    const n = Math.max(t?.bars.length ?? 0, p?.bars.length ?? 0);
    if (n === 0) continue;
    parts.push(`<text x="8" y="${y + 14}" class="c">${esc(c.title)}</text>`);
    y += 20;
    if (t)
      parts.push(
        panel(
          0,
          y,
          t.unit.includes('ns') || t.unit.includes('MiB') ? 'cost' : 'throughput',
          t.unit,
          t.bars,
        ),
      );
    if (p)
      parts.push(
        panel(PANEL, y, t?.unit.includes('ns') ? 'speed-up' : 'p99 latency', p.unit, p.bars),
      );
    y += HEAD + n * (BAR_H + GAP) + 14;
    parts.push(`<line x1="0" x2="${W}" y1="${y - 6}" y2="${y - 6}" class="s"/>`);
  }
  const h = y + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="system-ui, sans-serif">
<style>
.t{font-size:16px;font-weight:600}.c{font-size:13px;font-weight:600}.h{font-size:11px;fill:#555}
.l{font-size:11px;text-anchor:end}.v{font-size:11px;fill:#333}.o{fill:#2563eb}.p{fill:#9ca3af}.s{stroke:#e5e7eb}
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="22" class="t">dcache benchmarks — ${esc(subtitle)} (blue: dcache; medians)</text>
${parts.join('\n')}
</svg>
`;
}
