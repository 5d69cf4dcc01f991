// The lineage page (#/lineage?artifact=HASH | run=ID&step=S | model=NAME&
// version=V, &direction=upstream|downstream): the artifacts and the attempts
// that produced and consumed them, drawn as a layered SVG by dag.js (the
// DAG's layout, zoom, search and drawing of only what is in view), and for
// the node clicked its facts and links: an attempt to its run, an artifact
// to its download and its own lineage.
import { api } from './api.js';
import { artifactUrl, size } from './artifacts.js';
import { dagView } from './dag.js';
import { el, main } from './dom.js';

export const path = /^#\/lineage\?(.*)$/;

const KEYS = ['artifact', 'run', 'step', 'item', 'model', 'version', 'direction'];

export async function show(match) {
  const given = new URLSearchParams(match[1]);
  const q = new URLSearchParams();
  for (const k of KEYS) if (given.get(k)) q.set(k, given.get(k));
  const direction = q.get('direction') === 'downstream' ? 'downstream' : 'upstream';
  const g = await api('GET', '/api/lineage?' + q);
  const { nodes, byId } = graphNodes(g);
  const other = new URLSearchParams(q);
  other.set('direction', direction === 'upstream' ? 'downstream' : 'upstream');
  const start = q.get('artifact') ? 'artifact ' + q.get('artifact').slice(0, 12)
    : q.get('run') ? `run ${q.get('run')} / ${q.get('step')}` : `${q.get('model')}@${q.get('version')}`;
  const panel = el('div', { class: 'card', id: 'lineage-panel' }, el('p', { class: 'muted' }, 'Click a node to see it.'));
  const view = dagView({ noun: 'node', onSelect: (id) => { view.update(nodes, id); panel.replaceChildren(...details(byId.get(id), g)); } });
  main().replaceChildren(
    el('h1', {}, `Lineage of ${start}`),
    el('p', { class: 'muted', id: 'lineage-summary' },
      `${direction}: ${g.artifacts.length} artifacts, ${g.attempts.length} attempts · `,
      el('a', { href: '#/lineage?' + other, id: 'lineage-flip' }, 'show ' + other.get('direction'))),
    el('div', { class: 'cols' }, el('div', {}, view.el), panel));
  view.update(nodes, null);
}

// The graph as dag.js's steps: {id, needs, layer, label, sub, kind, state}.
// An attempt needs what it consumed; an artifact needs the attempts that
// produced (or reused) it. Layers by the longest path from a node with no
// needs (Kahn's order; a node on a cycle, which the store never records,
// would stay in layer 0).
function graphNodes(g) {
  const byId = new Map();
  for (const a of g.artifacts)
    byId.set('artifact:' + a.hash, { id: 'artifact:' + a.hash, needs: [], kind: 'artifact', state: 'artifact', label: `${a.kind} ${a.hash.slice(0, 12)}`,
                                      sub: size(a.size), title: `${a.kind} ${a.hash}`, artifact: a, names: new Set() });
  for (const a of g.attempts) {
    const step = a.step + (a.item !== undefined ? `[${a.item}]` : '');
    byId.set('attempt:' + a.id, { id: 'attempt:' + a.id, needs: [], kind: 'attempt', state: a.state, label: step,
                                  sub: `run ${a.run} · #${a.attempt} · ${a.state}`, title: `run ${a.run} / ${step} #${a.attempt}`, attempt: a });
  }
  for (const e of g.edges) {
    const art = byId.get('artifact:' + e.artifact), att = byId.get('attempt:' + e.attempt);
    if (!art || !att) continue;
    if (e.role === 'consumed') att.needs.push(art.id);
    else { art.needs.push(att.id); art.names.add(e.name); }
  }
  const nodes = [...byId.values()];
  const out = new Map(nodes.map((n) => [n.id, []]));
  const waiting = new Map(nodes.map((n) => [n.id, n.needs.length]));
  for (const n of nodes) for (const need of n.needs) out.get(need).push(n);
  const ready = nodes.filter((n) => !n.needs.length);
  for (const n of nodes) n.layer = 0;
  for (let k = 0; k < ready.length; k++) {
    const n = ready[k];
    for (const next of out.get(n.id)) {
      next.layer = Math.max(next.layer, n.layer + 1);
      waiting.set(next.id, waiting.get(next.id) - 1);
      if (!waiting.get(next.id)) ready.push(next);
    }
  }
  for (const n of nodes) if (n.kind === 'artifact' && n.names.size) n.sub = [...n.names].join(', ') + ' · ' + n.sub;
  return { nodes, byId };
}

function details(n, g) {
  if (!n) return [];
  if (n.kind === 'attempt') {
    const a = n.attempt;
    return [el('h2', {}, 'Attempt'),
      el('dl', { class: 'kv' }, el('dt', {}, 'Run'), el('dd', {}, el('a', { href: '#/r/' + a.run, id: 'lineage-run-link' }, '#' + a.run)),
        el('dt', {}, 'Step'), el('dd', {}, n.label), el('dt', {}, 'Attempt'), el('dd', {}, String(a.attempt)),
        el('dt', {}, 'State'), el('dd', {}, a.state)),
      el('p', {}, el('a', { href: `#/lineage?run=${a.run}&step=${encodeURIComponent(a.step)}${a.item !== undefined ? '&item=' + a.item : ''}` }, 'Lineage of this step'))];
  }
  const a = n.artifact;
  const makers = g.edges.filter((e) => e.artifact === a.hash && e.role !== 'consumed')
    .map((e) => g.attempts.find((x) => x.id === e.attempt)).filter(Boolean);
  return [el('h2', {}, 'Artifact'),
    el('dl', { class: 'kv' }, el('dt', {}, 'Kind'), el('dd', {}, a.kind), el('dt', {}, 'Size'), el('dd', {}, size(a.size)),
      el('dt', {}, 'Hash'), el('dd', { class: 'hash' }, a.hash),
      el('dt', {}, 'Made by'), el('dd', {}, makers.length ? makers.map((m, k) => [k ? ', ' : '', el('a', { href: '#/r/' + m.run }, `run ${m.run} / ${m.step}`)]) : '–')),
    el('div', { class: 'actions' },
      a.kind === 'dir' ? null : el('a', { class: 'button', href: artifactUrl(a.hash), download: n.label.replace(/ /g, '-'), id: 'lineage-download' }, 'Download'),
      el('a', { class: 'button', href: `#/lineage?artifact=${a.hash}&direction=upstream` }, 'Upstream'),
      el('a', { class: 'button', href: `#/lineage?artifact=${a.hash}&direction=downstream` }, 'Downstream'))];
}
