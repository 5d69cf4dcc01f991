// The runs page (#/runs): the last 100 runs, newest first, filtered by
// pipeline, state, trigger and age. The filters live in the hash
// (#/runs?state=failed&pipeline=train), so a filtered list can be linked to
// and survives a reload.
import { api, listen } from './api.js';
import { MAX_RUNS, MIN_RUNS } from './compare.js';
import { badge, duration, el, main, showError, when } from './dom.js';

export const path = /^#\/runs(?:\?(.*))?$/;

const STATES = ['queued', 'pending', 'running', 'succeeded', 'failed', 'cancelled'];
const TRIGGERS = ['cli', 'api', 'schedule', 'webhook', 'backfill'];
const AGES = [['1h', 3600e3, 'the last hour'], ['24h', 86400e3, 'the last day'], ['7d', 7 * 86400e3, 'the last week'],
              ['30d', 30 * 86400e3, 'the last 30 days']];

// The filters of the hash's query (unknown keys and values dropped).
function filters(query) {
  const q = new URLSearchParams(query || '');
  const f = {};
  if (q.get('pipeline')) f.pipeline = q.get('pipeline');
  if (STATES.includes(q.get('state'))) f.state = q.get('state');
  if (TRIGGERS.includes(q.get('trigger'))) f.trigger = q.get('trigger');
  if (AGES.some(([k]) => k === q.get('age'))) f.age = q.get('age');
  return f;
}

function select(name, label, options, value) {
  return el('label', {}, label, el('select', { name, id: 'filter-' + name },
    el('option', { value: '' }, 'any'),
    options.map(([v, text]) => el('option', { value: v, selected: v === value }, text))));
}

export async function show(match) {
  const f = filters(match && match[1]);
  const q = new URLSearchParams({ limit: '100' });
  for (const k of ['pipeline', 'state', 'trigger']) if (f[k]) q.set(k, f[k]);
  const since = f.age && AGES.find(([k]) => k === f.age)[1];
  const runsQuery = () => {  // the age counts back from each read's now
    if (since) q.set('since_ms', String(Date.now() - since));
    return '/api/runs?' + q;
  };
  const [data, pipes] = await Promise.all([api('GET', runsQuery()), api('GET', '/api/pipelines')]);
  const names = [...new Set([...pipes.pipelines.map((p) => p.name), ...(f.pipeline ? [f.pipeline] : [])])].sort();
  const form = el('form', { class: 'filters', id: 'run-filters', onchange: () => {
    const next = new URLSearchParams();
    for (const s of form.querySelectorAll('select')) if (s.value) next.set(s.name, s.value);
    const qs = next.toString();
    location.hash = '#/runs' + (qs ? '?' + qs : '');
  } },
  select('pipeline', 'Pipeline', names.map((n) => [n, n]), f.pipeline),
  select('state', 'State', STATES.map((s) => [s, s]), f.state),
  select('trigger', 'Trigger', TRIGGERS.map((t) => [t, t]), f.trigger),
  select('age', 'Created in', AGES.map(([k, , text]) => [k, text]), f.age));
  // The form is drawn once per address; events redraw only the list. The
  // runs ticked to compare stay ticked across redraws.
  const picked = new Set();
  const compare = el('button', { type: 'button', id: 'compare', disabled: true,
                                 onclick: () => { location.hash = '#/compare?runs=' + [...picked].sort((a, b) => a - b).join(','); } },
                     'Compare');
  const onPick = (id, on) => {
    if (on) picked.add(id); else picked.delete(id);
    compare.disabled = picked.size < MIN_RUNS || picked.size > MAX_RUNS;
    compare.textContent = picked.size ? `Compare ${picked.size}` : 'Compare';
  };
  const list = el('div', {}, runsTable(data.runs, f, picked, onPick));
  main().replaceChildren(el('h1', {}, 'Runs'), form,
    el('p', { class: 'muted' }, `Tick ${MIN_RUNS} to ${MAX_RUNS} runs of a pipeline to compare them: `, compare), list);
  const here = location.hash;
  listen(0, async () => {
    if (location.hash !== here) return;
    try {
      list.replaceChildren(runsTable((await api('GET', runsQuery())).runs, f, picked, onPick));
    } catch (x) { showError(x); }
  });
}

function runsTable(runs, f, picked, onPick) {
  if (!runs.length) return el('p', { class: 'muted', id: 'no-runs' }, Object.keys(f).length ? 'No run matches these filters.' : 'No runs yet.');
  return el('div', { class: 'scroll' }, el('table', { id: 'runs' },
    el('tr', {}, el('th', {}, ''), el('th', {}, 'Run'), el('th', {}, 'Pipeline'), el('th', {}, 'State'), el('th', {}, 'Trigger'), el('th', {}, 'Created'), el('th', {}, 'Duration')),
    runs.map((r) => el('tr', { 'data-run': r.id },
                       el('td', {}, el('input', { type: 'checkbox', class: 'pick', 'aria-label': 'compare run ' + r.id, checked: picked.has(r.id),
                                                  onchange: (e) => onPick(r.id, e.target.checked) })),
                       el('td', {}, el('a', { href: '#/r/' + r.id }, '#' + r.id)), el('td', {}, r.pipeline),
                       el('td', {}, badge(r.state)), el('td', {}, r.trigger), el('td', {}, when(r.created)), el('td', {}, duration(r.duration_ms))))));
}
