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

// the drawing's size: about the size it is drawn at on a desktop screen, so the 11px labels stay 11px
const W = 1100;
const H = 260;
// margins: left for the rate labels, bottom for the time labels
const L = 78;
const R = 10;
const T = 10;
const B = 26;
const MID = T + (H - T - B) / 2;
const HALF = (H - T - B) / 2;

type Series = 'rx' | 'tx';

/** Where things go: the time axis over [from, to] and the rates' scale, rx up from the middle, tx down. */
interface Frame {
  span: number;
  withDate: boolean;
  max: number;
  x(at: number): number;
  y: Record<Series, (v: number) => number>;
}

const f = (n: number) => n.toFixed(1);

function frameOf(points: readonly RatePoint[], o: ChartOptions): Frame {
  const span = Math.max(1, o.to - o.from);
  const max = Math.max(1024, ...points.map((p) => Math.max(p.rx ?? 0, p.tx ?? 0)));
  return {
    span,
    withDate: span > 24 * 3600_000,
    max,
    x: (at) => L + ((Math.min(o.to, Math.max(o.from, at)) - o.from) / span) * (W - L - R),
    y: { rx: (v) => MID - (v / max) * HALF, tx: (v) => MID + (v / max) * HALF },
  };
}

/** The rate grid (full and half scale each way, and the axis) and five time labels, the last one "now". */
function axes(fr: Frame, from: number): string {
  const grid: string[] = [];
  for (const [frac, dir] of [
    [1, 'rx'],
    [0.5, 'rx'],
    [0, ''],
    [0.5, 'tx'],
    [1, 'tx'],
  ] as const) {
    const yy = dir === 'tx' ? fr.y.tx(fr.max * frac) : fr.y.rx(fr.max * frac);
    const arrow = dir === 'rx' ? '▲ ' : dir === 'tx' ? '▼ ' : '';
    grid.push(
      `<line x1="${L}" x2="${W - R}" y1="${f(yy)}" y2="${f(yy)}" stroke="${frac === 0 ? '#9aa5b5' : '#e3e8ef'}"/>` +
        `<text x="${L - 6}" y="${f(yy)}" dy="4" text-anchor="end" font-size="11" fill="#5b6678">${arrow}${frac === 0 ? '0' : formatRate(fr.max * frac)}</text>`,
    );
  }
  const ticks: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const at = from + (fr.span * i) / 4;
    const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
    ticks.push(
      `<text x="${f(fr.x(at))}" y="${H - 8}" text-anchor="${anchor}" font-size="11" fill="#5b6678">${i === 4 ? 'now' : chartTime(at, fr.withDate, fr.span <= 15 * 60_000)}</text>`,
    );
  }
  return grid.join('') + ticks.join('');
}

/** One series' line; a null value lifts the pen. */
function linePath(points: readonly RatePoint[], fr: Frame, key: Series): string {
  let d = '';
  let pen = false;
  for (const p of points) {
    const v = p[key];
    if (v === null) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${f(fr.x(p.at))},${f(fr.y[key](v))}`;
    pen = true;
  }
  return d;
}

/** One series' area between its line and the axis, a closed shape per run without a gap. */
function areaPath(points: readonly RatePoint[], fr: Frame, key: Series): string {
  let d = '';
  let seg: string[] = [];
  const close = () => {
    if (seg.length > 0)
      d += `M${seg[0]!.split(',')[0]},${f(MID)}L${seg.join('L')}L${seg[seg.length - 1]!.split(',')[0]},${f(MID)}Z`;
    seg = [];
  };
  for (const p of points) {
    const v = p[key];
    if (v === null) close();
    else seg.push(`${f(fr.x(p.at))},${f(fr.y[key](v))}`);
  }
  close();
  return d;
}

/** A point with no neighbour to join (sparse stored history) is drawn as a dot. */
function dots(points: readonly RatePoint[], fr: Frame, key: Series, colour: string): string {
  return points
    .map((p, i) => {
      const v = p[key];
      if (v === null || points[i - 1]?.[key] != null || points[i + 1]?.[key] != null) return '';
      return `<circle class="dot-${key}" cx="${f(fr.x(p.at))}" cy="${f(fr.y[key](v))}" r="3.5" fill="${colour}"/>`;
    })
    .join('');
}

/** The invisible column of each point, halfway to its neighbours, with its time and values as a tooltip. */
function hitColumns(points: readonly RatePoint[], fr: Frame): string {
  return points
    .map((p, i) => {
      const prev = points[i - 1];
      const next = points[i + 1];
      const cx = fr.x(p.at);
      const x0 = prev ? (fr.x(prev.at) + cx) / 2 : cx - 4;
      const x1 = next ? (fr.x(next.at) + cx) / 2 : cx + 4;
      const time = chartTime(p.at, fr.withDate, !fr.withDate);
      const tip =
        p.rx === null ? `${time} UTC · no data` : `${time} UTC · rx ${formatRate(p.rx)} · tx ${formatRate(p.tx ?? 0)}`;
      return `<rect class="hit" x="${f(x0)}" y="${T}" width="${f(Math.max(1, x1 - x0))}" height="${H - T - B}" fill="transparent" data-x="${f(cx)}" data-tip="${escapeHtml(tip)}"><title>${escapeHtml(tip)}</title></rect>`;
    })
    .join('');
}

export function trafficChart(points: readonly RatePoint[], o: ChartOptions): SafeHtml {
  const fr = frameOf(points, o);
  const drawn = points.filter((p) => p.rx !== null).length;
  const body =
    drawn < 1
      ? `<text x="${(W + L) / 2}" y="${f(MID - 12)}" text-anchor="middle" font-size="13" fill="#5b6678">${escapeHtml(o.empty)}</text>`
      : `<path class="area-rx" d="${areaPath(points, fr, 'rx')}" fill="${RX_COLOUR}" fill-opacity="0.14"/>` +
        `<path class="area-tx" d="${areaPath(points, fr, 'tx')}" fill="${TX_COLOUR}" fill-opacity="0.14"/>` +
        `<path class="line-rx" d="${linePath(points, fr, 'rx')}" fill="none" stroke="${RX_COLOUR}" stroke-width="2" stroke-linejoin="round"/>` +
        `<path class="line-tx" d="${linePath(points, fr, 'tx')}" fill="none" stroke="${TX_COLOUR}" stroke-width="2" stroke-dasharray="7 4" stroke-linejoin="round"/>` +
        dots(points, fr, 'rx', RX_COLOUR) +
        dots(points, fr, 'tx', TX_COLOUR) +
        `<line class="guide" x1="0" x2="0" y1="${T}" y2="${H - B}" stroke="#17202e" stroke-opacity="0.45" visibility="hidden"/>` +
        hitColumns(points, fr);
  return trusted(
    `<div class="chart-wrap"><svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(o.label)}" data-mid="${f(MID)}">${axes(fr, o.from)}${body}</svg></div>`,
  );
}

/** The legend shared by every traffic chart: colour and dash of each line, and which side of the axis. */
export function chartLegend(rx: string, tx: string): SafeHtml {
  return trusted(
    `<div class="legend muted"><span><svg width="22" height="10" aria-hidden="true"><line x1="0" x2="22" y1="5" y2="5" stroke="${RX_COLOUR}" stroke-width="2"/></svg>▲ ${escapeHtml(rx)}</span>` +
      `<span><svg width="22" height="10" aria-hidden="true"><line x1="0" x2="22" y1="5" y2="5" stroke="${TX_COLOUR}" stroke-width="2" stroke-dasharray="7 4"/></svg>▼ ${escapeHtml(tx)}</span></div>`,
  );
}
