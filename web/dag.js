// The DAG picture, as an SVG: one box per step (a foreach step as a stack of
// cards with its item count), coloured by state through app.css. Laid out
// once per list of steps; only the boxes and edges near the part in view are
// drawn, again as it scrolls or the states change, so that a pipeline of
// 10,000 steps opens and follows its run as quickly as one of ten.
import { el, svg } from './dom.js';

const W = 168, H = 46, GX = 64, GY = 22, PAD = 16;
const MARGIN = 600;  // px drawn beyond each side of the view, so that a scroll shows boxes at once

// Layered layout: columns by layer (from the API), rows ordered by the mean
// row of each step's needs. `steps` as the API gives them (id, layer, needs).
function layout(steps) {
  const layers = [];
  for (const s of steps) (layers[s.layer] = layers[s.layer] || []).push(s);
  const pos = new Map();
  layers.forEach((layer, li) => {
    if (li > 0) {
      const mean = new Map(layer.map((s) => [s, s.needs.length
        ? s.needs.reduce((a, n) => a + (pos.has(n) ? pos.get(n).row : 0), 0) / s.needs.length : 0]));
      layer.sort((a, b) => mean.get(a) - mean.get(b));
    }
    layer.forEach((s, ri) => { pos.set(s.id, { row: ri, x: PAD + li * (W + GX), y: PAD + ri * (H + GY) }); });
  });
  const rows = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
  return { pos, width: PAD * 2 + layers.length * (W + GX) - GX + 8, height: PAD * 2 + rows * (H + GY) - GY + 8 };
}

function node(s, p, opts, selected) {
  const st = s.state || (s.forecast === 'skipped' ? 'skipped' : 'pending');
  const g = svg('g', { class: 'node' + (selected === s.id ? ' selected' : ''), 'data-step': s.id, 'data-state': st,
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
  return g;
}

// A DAG that stays on its page: update(steps, selected) draws it (laying
// it out again only when the steps' ids or layers changed), redrawSoon()
// draws it again at the next frame after the steps' states were changed in
// place, reveal(test) scrolls the first step passing test(step) into view.
// opts.onSelect(id) makes boxes clickable. `el` is its element.
export function dagView(opts) {
  const root = svg('svg', { role: 'img', 'aria-label': 'pipeline DAG' });
  const box = el('div', { class: 'dag' }, root);
  const arrow = svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'currentColor', class: 'muted' })));
  let steps = [], selected = null, lay = null, shape = '', frame = 0;
  // The boxes drawn last, by step id, with what they show: a box that shows
  // the same again is kept, so that a click on it is not lost to a redraw.
  let boxes = new Map();
  const draw = () => {
    frame = 0;
    // The part in view (the window's size until the box is on the page), with a margin.
    const x0 = box.scrollLeft - MARGIN, x1 = box.scrollLeft + (box.clientWidth || window.innerWidth) + MARGIN;
    const y0 = box.scrollTop - MARGIN, y1 = box.scrollTop + (box.clientHeight || window.innerHeight) + MARGIN;
    const parts = [arrow];
    for (const s of steps) {
      const b = lay.pos.get(s.id);
      for (const n of s.needs) {
        const a = lay.pos.get(n);
        if (!a || a.x + W > x1 || b.x < x0 || Math.max(a.y, b.y) + H < y0 || Math.min(a.y, b.y) > y1) continue;
        const ax = a.x + W, ay = a.y + H / 2, bx = b.x - (s.foreach ? 6 : 0), by = b.y + H / 2, mx = (ax + bx) / 2;
        parts.push(svg('path', { class: 'edge', d: `M${ax},${ay} C${mx},${ay} ${mx},${by} ${bx},${by}`, 'marker-end': 'url(#arrow)' }));
      }
    }
    const kept = new Map();
    for (const s of steps) {
      const p = lay.pos.get(s.id);
      if (p.x + W < x0 || p.x > x1 || p.y + H < y0 || p.y > y1) continue;
      const shows = [s.state, s.attempts, s.items, JSON.stringify(s.item_states), selected === s.id, p.x, p.y].join('|');
      const old = boxes.get(s.id);
      const g = old && old.shows === shows ? old.g : node(s, p, opts, selected);
      kept.set(s.id, { shows, g });
      parts.push(g);
    }
    boxes = kept;
    root.replaceChildren(...parts);
  };
  const redrawSoon = () => { if (!frame) frame = requestAnimationFrame(draw); };
  box.addEventListener('scroll', redrawSoon);
  new ResizeObserver(() => { if (lay) redrawSoon(); }).observe(box);  // also once it is on the page
  return {
    el: box,
    update(next, sel) {
      const nextShape = next.map((s) => s.id + '@' + s.layer).join('\n');
      if (nextShape !== shape) {
        shape = nextShape;
        lay = layout(next);
        for (const [k, v] of Object.entries({ width: lay.width, height: lay.height, viewBox: `0 0 ${lay.width} ${lay.height}` })) root.setAttribute(k, v);
      }
      steps = next;
      selected = sel;
      if (frame) cancelAnimationFrame(frame);
      draw();
    },
    redrawSoon,
    reveal(test) {
      const s = steps.find(test);
      if (!s) return;
      const p = lay.pos.get(s.id);
      box.scrollLeft = Math.max(0, p.x - PAD);
      box.scrollTop = Math.max(0, p.y - PAD);
      redrawSoon();
    },
  };
}

// The whole DAG, once (the pipeline page's).
export function drawDag(steps, opts) {
  const view = dagView(opts);
  view.update(steps, opts.selected);
  return view.el;
}
