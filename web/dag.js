// The DAG picture, as an SVG: one box per step (a foreach step as a stack of
// cards with its item count), coloured by state through app.css. Other
// layered graphs (the lineage's) are drawn by the same code: a node may
// bring its own `label`, `title`, `sub` line and `kind` (data-kind). Laid out
// once per list of steps, left to right or, when that is wider than the
// panel and top to bottom is not, top to bottom; scaled down to fit the
// panel when that keeps it readable; zoomed with − Fit +, panned by dragging
// or scrolling, and searched by step name. Only the boxes and edges near the
// part in view are drawn, again as it scrolls or the states change, so that a
// pipeline of 10,000 steps opens and follows its run as quickly as one of ten.
import { el, svg } from './dom.js';

const W = 168, H = 46, PAD = 16;
const GAP = { across: { layer: 64, row: 22 }, down: { layer: 40, row: 24 } };  // between layers, between rows
const MARGIN = 600;        // px drawn beyond each side of the view, so that a scroll shows boxes at once
const MIN_AUTO_FIT = 0.6;  // a DAG that would be drawn smaller than this to fit is shown at 1:1 and scrolls
const ZOOMS = [0.25, 0.35, 0.5, 0.6, 0.75, 0.9, 1, 1.25, 1.5, 2];

// Layered layout: layers by the API's `layer`, rows ordered by the mean row
// of each step's needs. `down`: layers are rows of the picture (top to
// bottom) instead of columns.
function layout(steps, down) {
  const layers = [];
  for (const s of steps) (layers[s.layer] = layers[s.layer] || []).push(s);
  const pos = new Map();
  const gap = down ? GAP.down : GAP.across;
  const along = (down ? H : W) + gap.layer, across = (down ? W : H) + gap.row;
  layers.forEach((layer, li) => {
    if (li > 0) {
      const mean = new Map(layer.map((s) => [s, s.needs.length
        ? s.needs.reduce((a, n) => a + (pos.has(n) ? pos.get(n).row : 0), 0) / s.needs.length : 0]));
      layer.sort((a, b) => mean.get(a) - mean.get(b));
    }
    layer.forEach((s, ri) => {
      const a = PAD + li * along, b = PAD + ri * across;
      pos.set(s.id, down ? { row: ri, x: b, y: a } : { row: ri, x: a, y: b });
    });
  });
  const rows = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
  const long = PAD * 2 + layers.length * along - gap.layer + 8, wide = PAD * 2 + rows * across - gap.row + 8;
  return { pos, down, width: down ? wide : long, height: down ? long : wide };
}

function node(s, p, opts, selected) {
  const st = s.state || (s.forecast === 'skipped' ? 'skipped' : 'pending');
  const g = svg('g', { class: 'node' + (selected === s.id ? ' selected' : ''), 'data-step': s.id, 'data-state': st,
                       'data-kind': s.kind, transform: `translate(${p.x},${p.y})`, tabindex: 0 });
  if (s.foreach) {  // a foreach step: a stack of cards with its item count
    g.append(svg('rect', { class: 'stack', x: -6, y: -6, width: W, height: H }));
    g.append(svg('rect', { class: 'stack', x: -3, y: -3, width: W, height: H }));
  }
  g.append(svg('rect', { class: 'box', x: 0, y: 0, width: W, height: H }));
  const name = s.label || s.id;
  const label = name.length > 20 ? name.slice(0, 19) + '…' : name;
  g.append(svg('title', {}, s.title || name));
  g.append(svg('text', { x: 10, y: 19 }, label));
  let sub = st;
  if (s.sub !== undefined) sub = s.sub;
  else if (s.foreach) {
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

function edge(a, b, s, down) {
  if (down) {
    const ax = a.x + W / 2, ay = a.y + H, bx = b.x + W / 2, by = b.y - (s.foreach ? 6 : 0), my = (ay + by) / 2;
    return `M${ax},${ay} C${ax},${my} ${bx},${my} ${bx},${by}`;
  }
  const ax = a.x + W, ay = a.y + H / 2, bx = b.x - (s.foreach ? 6 : 0), by = b.y + H / 2, mx = (ax + bx) / 2;
  return `M${ax},${ay} C${mx},${ay} ${mx},${by} ${bx},${by}`;
}

// A DAG that stays on its page: update(steps, selected) draws it (laying
// it out again only when the steps' ids or layers changed), redrawSoon()
// draws it again at the next frame after the steps' states were changed in
// place, reveal(test) scrolls the first step passing test(step) into view.
// opts.onSelect(id) makes boxes clickable (and is what "Find" calls);
// opts.noun names what the boxes are ("step"). `el`
// is its element: the tools above the scrolling picture (class dag).
export function dagView(opts) {
  const root = svg('svg', { role: 'img', 'aria-label': 'pipeline DAG' });
  const box = el('div', { class: 'dag' }, root);
  const arrow = svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'currentColor', class: 'muted' })));
  let steps = [], selected = null, lay = null, shape = '', frame = 0, scale = 1, zoomed = false, fitted = false;
  // The boxes drawn last, by step id, with what they show: a box that shows
  // the same again is kept, so that a click on it is not lost to a redraw.
  let boxes = new Map();
  const panelWidth = () => box.clientWidth || window.innerWidth;
  // The .dag's max-height (75vh), or less so that the picture ends on screen.
  const panelHeight = () => {
    const top = box.isConnected ? box.getBoundingClientRect().top + window.scrollY : 0;
    return Math.max(300, Math.min(window.innerHeight * 0.75, window.innerHeight - top - 16));
  };
  const draw = () => {
    frame = 0;
    // The part in view in layout units (the window's size until the box is on the page), with a margin.
    const x0 = box.scrollLeft / scale - MARGIN, x1 = (box.scrollLeft + panelWidth()) / scale + MARGIN;
    const y0 = box.scrollTop / scale - MARGIN, y1 = (box.scrollTop + (box.clientHeight || window.innerHeight)) / scale + MARGIN;
    const parts = [arrow];
    for (const s of steps) {
      const b = lay.pos.get(s.id);
      for (const n of s.needs) {
        const a = lay.pos.get(n);
        if (!a || Math.min(a.x, b.x) > x1 || Math.max(a.x, b.x) + W < x0 || Math.min(a.y, b.y) > y1 || Math.max(a.y, b.y) + H < y0) continue;
        parts.push(svg('path', { class: 'edge', d: edge(a, b, s, lay.down), 'marker-end': 'url(#arrow)' }));
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
  const setScale = (next) => {
    // Keeps the point in the middle of the view where it is.
    const cx = (box.scrollLeft + panelWidth() / 2) / scale, cy = (box.scrollTop + (box.clientHeight || 0) / 2) / scale;
    scale = next;
    root.setAttribute('width', Math.ceil(lay.width * scale));
    root.setAttribute('height', Math.ceil(lay.height * scale));
    root.dataset.scale = String(scale);
    box.scrollLeft = Math.max(0, cx * scale - panelWidth() / 2);
    box.scrollTop = Math.max(0, cy * scale - (box.clientHeight || 0) / 2);
    zoomLabel.textContent = Math.round(scale * 100) + '%';
    redrawSoon();
  };
  const panelKey = () => Math.round(panelWidth()) + 'x' + Math.round(panelHeight());
  let arrangedFor = '';
  const fitScale = () => Math.min(1, (panelWidth() - 4) / lay.width, panelHeight() / lay.height);
  // The picture for this panel: left to right if it fits, else top to
  // bottom if that fits better; drawn smaller to fit if it stays readable.
  // Both layouts depend only on the steps' shape: made once per shape (the
  // top-to-bottom one only if left to right does not fit), picked per panel.
  let layouts = null;
  const arrange = () => {
    const fits = (l) => Math.min(1, (panelWidth() - 4) / l.width, panelHeight() / l.height);
    if (!layouts) layouts = { across: layout(steps, false) };
    if (fits(layouts.across) < 1 && !layouts.down) layouts.down = layout(steps, true);
    lay = fits(layouts.across) >= 1 || fits(layouts.across) >= fits(layouts.down) ? layouts.across : layouts.down;
    root.setAttribute('viewBox', `0 0 ${lay.width} ${lay.height}`);
    root.dataset.layout = lay.down ? 'down' : 'across';
    fitted = box.clientWidth > 0;  // arranged for the panel's real width
    arrangedFor = panelKey();
    const f = fitScale();
    setScale(zoomed ? scale : f >= MIN_AUTO_FIT ? f : 1);
  };
  const zoomLabel = el('span', { class: 'muted', id: 'dag-zoom' }, '100%');
  const zoom = (dir) => {  // to the next step of ZOOMS in that direction
    const next = dir > 0 ? ZOOMS.find((z) => z > scale + 1e-9) : [...ZOOMS].reverse().find((z) => z < scale - 1e-9);
    if (next === undefined) return;
    zoomed = true;
    setScale(next);
  };
  const noun = opts.noun || 'step';
  const find = el('input', { type: 'search', id: 'dag-find', placeholder: 'Find a ' + noun, 'aria-label': `find a ${noun} by name` });
  const found = el('span', { class: 'muted', id: 'dag-found' });
  find.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    const text = find.value.trim().toLowerCase();
    if (!text) return;
    const name = (s) => (s.label || s.id).toLowerCase();
    const hit = steps.find((s) => name(s) === text) || steps.find((s) => name(s).includes(text));
    found.textContent = hit ? '' : `no ${noun} named like that`;
    if (!hit) return;
    if (opts.onSelect) opts.onSelect(hit.id);
    else { selected = hit.id; redrawSoon(); }
    view.reveal((s) => s.id === hit.id);
  });
  const tools = el('div', { class: 'dag-tools' },
    el('button', { type: 'button', id: 'dag-zoom-out', title: 'zoom out', onclick: () => zoom(-1) }, '−'),
    el('button', { type: 'button', id: 'dag-fit', title: 'fit the DAG to the panel', onclick: () => { zoomed = true; setScale(Math.max(ZOOMS[0], fitScale())); } }, 'Fit'),
    el('button', { type: 'button', id: 'dag-zoom-in', title: 'zoom in', onclick: () => zoom(1) }, '+'),
    zoomLabel, find, found);
  // Dragging the background pans (the boxes keep their clicks).
  let drag = null;
  box.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 || e.target.closest('.node')) return;
    drag = { x: e.clientX, y: e.clientY, left: box.scrollLeft, top: box.scrollTop, id: e.pointerId };
  });
  box.addEventListener('pointermove', (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    if (!box.classList.contains('panning')) {
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) < 4) return;
      box.classList.add('panning');
      box.setPointerCapture(e.pointerId);
    }
    box.scrollLeft = drag.left - (e.clientX - drag.x);
    box.scrollTop = drag.top - (e.clientY - drag.y);
  });
  const endDrag = () => { drag = null; box.classList.remove('panning'); };
  box.addEventListener('pointerup', endDrag);
  box.addEventListener('pointercancel', endDrag);
  box.addEventListener('scroll', redrawSoon);
  // Once on the page (and when the panel's width changes), arrange for it.
  new ResizeObserver(() => {
    if (!lay) return;
    if (!fitted || !zoomed) arrange();
    else redrawSoon();
  }).observe(box);
  const view = {
    el: el('div', { class: 'dag-view' }, tools, box),
    update(next, sel) {
      steps = next;
      selected = sel;
      const nextShape = next.map((s) => s.id + '@' + s.layer).join('\n');
      // Arranged again for new steps, or (until zoomed by hand) for a panel
      // that moved or changed size since (the page above it grew).
      if (nextShape !== shape) layouts = null;
      if (nextShape !== shape || (!zoomed && box.isConnected && panelKey() !== arrangedFor)) {
        shape = nextShape;
        arrange();
      }
      if (frame) cancelAnimationFrame(frame);
      draw();
    },
    redrawSoon,
    reveal(test) {
      const s = steps.find(test);
      if (!s) return;
      const p = lay.pos.get(s.id);
      box.scrollLeft = Math.max(0, (p.x - PAD) * scale);
      box.scrollTop = Math.max(0, (p.y - PAD) * scale);
      redrawSoon();
    },
  };
  return view;
}

// The whole DAG, once (the pipeline page's).
export function drawDag(steps, opts) {
  const view = dagView(opts);
  view.update(steps, opts.selected);
  return view.el;
}
