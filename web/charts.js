// Small SVG line charts: for the services' pages, one line per version over
// a span of time, coloured by the version's place (app.css .c0 … .c5), a
// gap where the gateway flushed no window; for a step's metrics, a line per
// attempt over the metric's index (the epoch). Drawn with svg() (dom.js), so
// every label is text.
import { el, svg } from './dom.js';

const W = 320, H = 110, L = 44, R = 8, T = 10, B = 20;

// `lines`: [{name, colour (0..5), points: [{t, v}]}] with v null for none;
// opts: {from, to, step (ms between points), format(v) for the axis, label}.
export function lineChart(lines, opts) {
  const values = lines.flatMap((l) => l.points.map((p) => p.v)).filter((v) => v !== null && v !== undefined);
  const top = niceTop(values.length ? Math.max(...values) : 0);
  const x = (t) => L + ((t - opts.from) / Math.max(1, opts.to - opts.from)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.label });
  root.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg('line', { class: 'grid', x1: L, y1: T, x2: W - R, y2: T }),
    svg('text', { class: 'tick', x: L - 4, y: T + 4, 'text-anchor': 'end' }, opts.format(top)),
    svg('text', { class: 'tick', x: L - 4, y: H - B + 4, 'text-anchor': 'end' }, opts.format(0)),
    svg('text', { class: 'tick', x: L, y: H - 4 }, ago(opts.to - opts.from)),
    svg('text', { class: 'tick', x: W - R, y: H - 4, 'text-anchor': 'end' }, 'now'));
  for (const line of lines) {
    let d = '', prev = null;
    for (const p of line.points) {
      if (p.v === null || p.v === undefined) { prev = null; continue; }
      const joined = prev !== null && p.t - prev <= opts.step;
      d += `${joined ? 'L' : 'M'}${x(p.t + opts.step / 2).toFixed(1)},${y(p.v).toFixed(1)}`;
      prev = p.t;
    }
    if (!d) continue;
    root.append(svg('path', { class: 'line c' + line.colour, d, 'data-version': line.name },
      svg('title', {}, line.name)));
  }
  if (!values.length) root.append(svg('text', { class: 'tick', x: (L + W - R) / 2, y: H / 2, 'text-anchor': 'middle' }, 'no requests in this span'));
  return el('figure', { class: 'chart-box' }, el('figcaption', {}, opts.label), root);
}

// 1, 2 or 5 times a power of ten at or above v (1 for nothing).
function niceTop(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function ago(ms) {
  const min = Math.round(ms / 60000);
  return min >= 120 ? Math.round(min / 60) + ' h ago' : min + ' min ago';
}

// A metric's value in three significant digits (0.2, 0.333, 1250).
export const formatMetric = (v) => (Math.abs(v) >= 100 || Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3))));

// A metric over its index: `lines` [{name, colour, points: [{i, v}]}] (points
// in index order); each point has its value as a hover title. opts: {label,
// format(v)}. The value axis spans the values' range (from 0 when all are
// positive and the smallest is under half the largest).
export function indexChart(lines, opts) {
  const points = lines.flatMap((l) => l.points);
  const i0 = Math.min(...points.map((p) => p.i)), i1 = Math.max(...points.map((p) => p.i), i0 + 1);
  let v0 = Math.min(...points.map((p) => p.v)), v1 = Math.max(...points.map((p) => p.v));
  if (v0 >= 0 && v0 < v1 / 2) v0 = 0;
  if (v1 === v0) v1 = v0 + 1;
  const x = (i) => L + ((i - i0) / (i1 - i0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.label });
  root.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    svg('text', { class: 'tick', x: L - 4, y: T + 4, 'text-anchor': 'end' }, opts.format(v1)),
    svg('text', { class: 'tick', x: L - 4, y: H - B + 4, 'text-anchor': 'end' }, opts.format(v0)),
    svg('text', { class: 'tick', x: L, y: H - 4 }, String(i0)),
    svg('text', { class: 'tick', x: W - R, y: H - 4, 'text-anchor': 'end' }, String(i1)));
  for (const line of lines) {
    const d = line.points.map((p, k) => `${k ? 'L' : 'M'}${x(p.i).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
    root.append(svg('path', { class: 'line c' + line.colour, d, 'data-line': line.name }, svg('title', {}, line.name)));
    for (const p of line.points)
      root.append(svg('circle', { class: 'point c' + line.colour, cx: x(p.i).toFixed(1), cy: y(p.v).toFixed(1), r: 0.5 },
        svg('title', {}, `${line.name} · ${opts.indexName || 'index'} ${p.i}: ${opts.format(p.v)}`)));
  }
  return el('figure', { class: 'chart-box' }, el('figcaption', {}, opts.label), root);
}
