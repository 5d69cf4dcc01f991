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
// in index order); each point has its value as a hover title (but in a
// decimated line). opts: {label,
// format(v)}. The value axis spans the values' range (from 0 when all are
// positive and the smallest is under half the largest). A line of more
// points than the plot has columns is decimated (decimate() below): it looks
// the same, and 100,000 points draw as quickly as a thousand.
export function indexChart(lines, opts) {
  let i0 = Infinity, i1 = -Infinity, v0 = Infinity, v1 = -Infinity;  // loops: a spread of 100,000 arguments overflows the stack
  for (const l of lines)
    for (const p of l.points) {
      if (p.i < i0) i0 = p.i;
      if (p.i > i1) i1 = p.i;
      if (p.v < v0) v0 = p.v;
      if (p.v > v1) v1 = p.v;
    }
  i1 = Math.max(i1, i0 + 1);
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
  const columns = COLUMNS_PER_UNIT * (W - L - R);
  for (const line of lines) {
    const points = line.points.length > 2 * columns ? decimate(line.points, i0, i1, columns) : line.points;
    const d = points.map((p, k) => `${k ? 'L' : 'M'}${x(p.i).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
    root.append(svg('path', { class: 'line c' + line.colour, d, 'data-line': line.name, 'data-points': line.points.length },
      svg('title', {}, line.name)));
    if (points !== line.points) continue;  // decimated: a point per value would be a smear, not a hover
    for (const p of points)
      root.append(svg('circle', { class: 'point c' + line.colour, cx: x(p.i).toFixed(1), cy: y(p.v).toFixed(1), r: 0.5 },
        svg('title', {}, `${line.name} · ${opts.indexName || 'index'} ${p.i}: ${opts.format(p.v)}`)));
  }
  return el('figure', { class: 'chart-box' }, el('figcaption', {}, opts.label), root);
}

// Columns of the plot per viewBox unit: the chart is drawn up to about
// three times its viewBox's width on a wide screen.
const COLUMNS_PER_UNIT = 3;

// The points of a long line that draw it as it is: per column of the plot
// (`columns` of them over i0..i1), the lowest and the highest point, in
// index order, so that every spike stays. At most 2 points per column.
export function decimate(points, i0, i1, columns) {
  const out = [];
  const scale = columns / Math.max(1e-9, i1 - i0);
  let column = -1, lo = null, hi = null;
  const flush = () => {
    if (!lo) return;
    if (lo === hi) out.push(lo);
    else if (lo.i <= hi.i) out.push(lo, hi);
    else out.push(hi, lo);
  };
  for (const p of points) {
    const c = Math.min(columns - 1, Math.floor((p.i - i0) * scale));
    if (c !== column) {
      flush();
      column = c;
      lo = hi = p;
      continue;
    }
    if (p.v < lo.v) lo = p;
    if (p.v > hi.v) hi = p;
  }
  flush();
  return out;
}
