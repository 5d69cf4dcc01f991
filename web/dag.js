// The DAG picture, as an SVG: one box per step (a foreach step as a stack of
// cards with its item count), coloured by state through app.css.
import { el, svg } from './dom.js';

// Layered layout: columns by layer (from the API), rows ordered by the mean
// row of each step's needs, edges as curves from right to left. `steps` as
// the API gives them (id, layer, needs; a run's also state, attempts, items);
// opts.selected marks a step, opts.onSelect(id) makes boxes clickable.
export function drawDag(steps, opts) {
  const W = 168, H = 46, GX = 64, GY = 22, PAD = 16;
  const layers = [];
  for (const s of steps) (layers[s.layer] = layers[s.layer] || []).push(s);
  const pos = {};
  layers.forEach((layer, li) => {
    if (li > 0) {
      const mean = (s) => (s.needs.length ? s.needs.reduce((a, n) => a + (pos[n] ? pos[n].row : 0), 0) / s.needs.length : 0);
      layer.sort((a, b) => mean(a) - mean(b));
    }
    layer.forEach((s, ri) => { pos[s.id] = { row: ri, x: PAD + li * (W + GX), y: PAD + ri * (H + GY) }; });
  });
  const rows = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
  const width = PAD * 2 + layers.length * (W + GX) - GX + 8, height = PAD * 2 + rows * (H + GY) - GY + 8;
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'pipeline DAG' });
  for (const s of steps)
    for (const n of s.needs) {
      const a = pos[n], b = pos[s.id];
      if (!a || !b) continue;
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x - (s.foreach ? 6 : 0), y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      root.append(svg('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' }));
    }
  root.prepend(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'currentColor', class: 'muted' }))));
  for (const s of steps) {
    const p = pos[s.id];
    const st = s.state || (s.forecast === 'skipped' ? 'skipped' : 'pending');
    const g = svg('g', { class: 'node' + (opts.selected === s.id ? ' selected' : ''), 'data-step': s.id, 'data-state': st,
                         transform: `translate(${p.x},${p.y})`, tabindex: 0 });
    if (s.foreach) {  // a foreach step: a stack of cards with its item count
      g.append(svg('rect', { class: 'stack', x: -6, y: -6, width: W, height: H }));
      g.append(svg('rect', { class: 'stack', x: -3, y: -3, width: W, height: H }));
    }
    g.append(svg('rect', { class: 'box', x: 0, y: 0, width: W, height: H }));
    const label = s.id.length > 20 ? s.id.slice(0, 19) + '…' : s.id;
    g.append(svg('title', {}, s.id));
    g.append(svg('text', { x: 10, y: 19 }, label));
    let sub = st;
    if (s.foreach) {
      const n = s.items !== undefined ? s.items : '?';
      const counts = s.item_states ? Object.entries(s.item_states).map(([k, v]) => v + ' ' + k).join(', ') : '';
      sub = 'foreach ×' + n + (counts ? ' · ' + counts : '');
    } else if (s.attempts > 1) sub += ' · ' + s.attempts + ' attempts';
    g.append(svg('text', { class: 'sub', x: 10, y: 36 }, sub.length > 28 ? sub.slice(0, 27) + '…' : sub));
    if (opts.onSelect) {
      g.addEventListener('click', () => opts.onSelect(s.id));
      g.addEventListener('keydown', (e) => { if (e.key === 'Enter') opts.onSelect(s.id); });
    }
    root.append(g);
  }
  return el('div', { class: 'dag' }, root);
}
