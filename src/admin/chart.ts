/** @module admin/chart: the traffic chart, an inline SVG drawn on the server (numbers only: no request data
 *  reaches it, so it is built as trusted markup).
 *  Mirrored, as operators know it from MRTG-style graphs: traffic from clients (rx) rises above the middle
 *  axis, traffic to clients (tx) hangs below it, so the two never hide each other even when they are equal;
 *  tx is also dashed, for readers who cannot tell the colours apart. A gap in the data (the broker was not
 *  running) is a gap in the lines. Each point has an invisible column carrying its time and values: a
 *  native tooltip (<title>) without script, and the hover tooltip app.js draws (assets.ts). */

import { trusted, escapeHtml, type SafeHtml } from './html.js';
import type { RatePoint } from './history.js';

export const RX_COLOUR = '#1f6feb';
export const TX_COLOUR = '#e8710a';

/** Bytes (or bytes per second) in binary units, as every page shows them. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(x) : x.toFixed(1)} ${units[i]}`;
}

export function formatRate(n: number): string {
  return `${formatBytes(n)}/s`;
}

/** UTC time for an axis or a tooltip: with the date when the span is longer than a day. */
export function chartTime(ms: number, withDate: boolean, withSeconds = false): string {
  const iso = new Date(ms).toISOString();
  const hm = iso.slice(11, withSeconds ? 19 : 16);
  return withDate ? `${iso.slice(5, 10)} ${hm}` : hm;
}

export interface ChartOptions {
  from: number;
  to: number;
  /** What to say when there is nothing to draw yet. */
  empty: string;
  label: string;
}

export function trafficChart(points: readonly RatePoint[], o: ChartOptions): SafeHtml {
  // about the size it is drawn at on a desktop screen, so the 11px labels stay 11px
  const W = 1100;
  const H = 260;
  const L = 78;
  const R = 10;
  const T = 10;
  const B = 26;
  const mid = T + (H - T - B) / 2;
  const half = (H - T - B) / 2;
  const span = Math.max(1, o.to - o.from);
  const withDate = span > 24 * 3600_000;
  const max = Math.max(1024, ...points.map((p) => Math.max(p.rx ?? 0, p.tx ?? 0)));
  const x = (at: number) => L + ((Math.min(o.to, Math.max(o.from, at)) - o.from) / span) * (W - L - R);
  const yRx = (v: number) => mid - (v / max) * half;
  const yTx = (v: number) => mid + (v / max) * half;
  const f = (n: number) => n.toFixed(1);

  const grid: string[] = [];
  for (const [frac, dir] of [
    [1, 'rx'],
    [0.5, 'rx'],
    [0, ''],
    [0.5, 'tx'],
    [1, 'tx'],
  ] as const) {
    const yy = dir === 'tx' ? yTx(max * frac) : yRx(max * frac);
    const arrow = dir === 'rx' ? '▲ ' : dir === 'tx' ? '▼ ' : '';
    grid.push(
      `<line x1="${L}" x2="${W - R}" y1="${f(yy)}" y2="${f(yy)}" stroke="${frac === 0 ? '#9aa5b5' : '#e3e8ef'}"/>` +
        `<text x="${L - 6}" y="${f(yy)}" dy="4" text-anchor="end" font-size="11" fill="#5b6678">${arrow}${frac === 0 ? '0' : formatRate(max * frac)}</text>`,
    );
  }
  const ticks: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const at = o.from + (span * i) / 4;
    const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
    ticks.push(
      `<text x="${f(x(at))}" y="${H - 8}" text-anchor="${anchor}" font-size="11" fill="#5b6678">${i === 4 ? 'now' : chartTime(at, withDate, span <= 15 * 60_000)}</text>`,
    );
  }

  // one path per series; a null value lifts the pen
  const line = (key: 'rx' | 'tx', y: (v: number) => number) => {
    let d = '';
    let pen = false;
    for (const p of points) {
      const v = p[key];
      if (v === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${f(x(p.at))},${f(y(v))}`;
      pen = true;
    }
    return d;
  };
  const area = (key: 'rx' | 'tx', y: (v: number) => number) => {
    let d = '';
    let seg: string[] = [];
    const close = () => {
      if (seg.length > 0)
        d += `M${seg[0]!.split(',')[0]},${f(mid)}L${seg.join('L')}L${seg[seg.length - 1]!.split(',')[0]},${f(mid)}Z`;
      seg = [];
    };
    for (const p of points) {
      const v = p[key];
      if (v === null) close();
      else seg.push(`${f(x(p.at))},${f(y(v))}`);
    }
    close();
    return d;
  };

  // a point with no neighbour to join (sparse stored history) is drawn as a dot
  const dots = (key: 'rx' | 'tx', y: (v: number) => number, colour: string) =>
    points
      .map((p, i) => {
        const v = p[key];
        if (v === null || points[i - 1]?.[key] != null || points[i + 1]?.[key] != null) return '';
        return `<circle class="dot-${key}" cx="${f(x(p.at))}" cy="${f(y(v))}" r="3.5" fill="${colour}"/>`;
      })
      .join('');

  const drawn = points.filter((p) => p.rx !== null).length;
  let body: string;
  if (drawn < 1) {
    body = `<text x="${(W + L) / 2}" y="${f(mid - 12)}" text-anchor="middle" font-size="13" fill="#5b6678">${escapeHtml(o.empty)}</text>`;
  } else {
    const hits = points
      .map((p, i) => {
        const prev = points[i - 1];
        const next = points[i + 1];
        const cx = x(p.at);
        const x0 = prev ? (x(prev.at) + cx) / 2 : cx - 4;
        const x1 = next ? (x(next.at) + cx) / 2 : cx + 4;
        const tip =
          p.rx === null
            ? `${chartTime(p.at, withDate, !withDate)} UTC · no data`
            : `${chartTime(p.at, withDate, !withDate)} UTC · rx ${formatRate(p.rx)} · tx ${formatRate(p.tx ?? 0)}`;
        return `<rect class="hit" x="${f(x0)}" y="${T}" width="${f(Math.max(1, x1 - x0))}" height="${H - T - B}" fill="transparent" data-x="${f(cx)}" data-tip="${escapeHtml(tip)}"><title>${escapeHtml(tip)}</title></rect>`;
      })
      .join('');
    body =
      `<path class="area-rx" d="${area('rx', yRx)}" fill="${RX_COLOUR}" fill-opacity="0.14"/>` +
      `<path class="area-tx" d="${area('tx', yTx)}" fill="${TX_COLOUR}" fill-opacity="0.14"/>` +
      `<path class="line-rx" d="${line('rx', yRx)}" fill="none" stroke="${RX_COLOUR}" stroke-width="2" stroke-linejoin="round"/>` +
      `<path class="line-tx" d="${line('tx', yTx)}" fill="none" stroke="${TX_COLOUR}" stroke-width="2" stroke-dasharray="7 4" stroke-linejoin="round"/>` +
      dots('rx', yRx, RX_COLOUR) +
      dots('tx', yTx, TX_COLOUR) +
      `<line class="guide" x1="0" x2="0" y1="${T}" y2="${H - B}" stroke="#17202e" stroke-opacity="0.45" visibility="hidden"/>` +
      hits;
  }
  return trusted(
    `<div class="chart-wrap"><svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(o.label)}" data-mid="${f(mid)}">${grid.join('')}${ticks.join('')}${body}</svg></div>`,
  );
}

/** The legend shared by every traffic chart: colour and dash of each line, and which side of the axis. */
export function chartLegend(rx: string, tx: string): SafeHtml {
  return trusted(
    `<div class="legend muted"><span><svg width="22" height="10" aria-hidden="true"><line x1="0" x2="22" y1="5" y2="5" stroke="${RX_COLOUR}" stroke-width="2"/></svg>▲ ${escapeHtml(rx)}</span>` +
      `<span><svg width="22" height="10" aria-hidden="true"><line x1="0" x2="22" y1="5" y2="5" stroke="${TX_COLOUR}" stroke-width="2" stroke-dasharray="7 4"/></svg>▼ ${escapeHtml(tx)}</span></div>`,
  );
}
