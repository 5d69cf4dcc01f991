// The Sluice web UI: plain DOM, no framework. Everything it shows comes from
// the JSON API (specs/api.yaml). Text from the server is only ever placed
// with textContent or setAttribute, never parsed as markup.
'use strict';

const state = { csrf: '', scope: '', events: null, eventsKey: '', onChange: null, logStream: null, refreshTimer: 0, selected: null, run: null };
const main = () => document.getElementById('main');

// --- small DOM helpers -------------------------------------------------------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const badge = (s) => el('span', { class: 'badge ' + s }, s);
function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return ms + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  const m = Math.floor(s / 60);
  return m + ' min ' + Math.round(s - m * 60) + ' s';
}
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

// --- the API -----------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = state.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const type = res.headers.get('Content-Type') || '';
  const data = type.startsWith('application/json') ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401) { showLogin(data.error ? data.error.message : ''); }
    throw new ApiError(res.status, data.error ? data.error.message : String(data));
  }
  return data;
}

// --- login ---------------------------------------------------------------------
function showLogin(message) {
  closeStreams();
  const input = el('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'slc_…' });
  const err = el('p', { class: 'error', id: 'login-error' }, message && message !== 'no session' ? message : '');
  const form = el('form', { class: 'card', id: 'login', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const s = await fetch('/api/session', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                              body: JSON.stringify({ token: input.value.trim() }) });
      const data = await s.json();
      if (!s.ok) { err.textContent = data.error.message; return; }
      state.csrf = data.csrf; state.scope = data.scope;
      setWho(data);
      route();
    } catch (x) { err.textContent = String(x); }
  } },
  el('h1', {}, 'Sign in'),
  el('p', { class: 'muted' }, 'Paste an API token. Make one with: sluice token create --scope run'),
  input, el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Sign in')), err);
  main().replaceChildren(form);
  input.focus();
}
function setWho(s) {
  document.getElementById('who').replaceChildren(s ? el('span', {}, (s.name || 'token') + ' · ' + s.scope + ' ',
    el('button', { onclick: async () => { await api('DELETE', '/api/session'); state.csrf = ''; showLogin(''); setWho(null); } }, 'Sign out')) : '');
}

// --- streams -------------------------------------------------------------------
function closeStreams() {
  if (state.events) { state.events.close(); state.events = null; }
  if (state.logStream) { state.logStream.close(); state.logStream = null; }
  clearTimeout(state.refreshTimer);
}
// One event stream per page: a page that draws itself again keeps its
// stream (and only swaps the callback); navigation closes it (route()).
function listen(run, onChange) {
  const key = location.hash + '|' + run;
  state.onChange = onChange;
  if (state.events && state.eventsKey === key) return;
  if (state.events) state.events.close();
  const es = new EventSource('/api/events' + (run ? '?run=' + run : ''));
  const kick = () => { clearTimeout(state.refreshTimer); state.refreshTimer = setTimeout(() => state.onChange(), 60); };
  es.addEventListener('hello', kick);  // subscribed: read again what may have changed before
  es.addEventListener('run', kick);
  es.addEventListener('step', kick);
  es.onerror = () => {};  // EventSource reconnects by itself (and gets a new hello)
  state.events = es;
  state.eventsKey = key;
}

// --- the DAG picture -------------------------------------------------------------
// Layered layout: columns by layer (from the API), rows ordered by the mean
// row of each step's needs, edges as curves from right to left.
function drawDag(steps, opts) {
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

// --- pages -----------------------------------------------------------------------
async function pipelinesPage() {
  const data = await api('GET', '/api/pipelines');
  const cards = data.pipelines.map((p) => el('div', { class: 'card pipeline', 'data-pipeline': p.name },
    el('h2', {}, p.valid ? el('a', { href: '#/p/' + encodeURIComponent(p.name) }, p.name) : p.name, ' ',
       p.valid ? '' : badge('invalid')),
    p.valid ? el('p', { class: 'muted' }, p.description || p.file + ' · ' + p.steps + (p.steps === 1 ? ' step' : ' steps')) : null,
    p.valid ? null : el('pre', { class: 'error' }, p.errors.join('\n')),
    p.schedules && p.schedules.length ? el('p', {}, 'Schedules: ', p.schedules.map((s) => `${s.cron} (${s.timezone}) next ${when(s.next[0])}`).join('; ')) : null,
    p.runs && p.runs.length ? el('table', {}, el('tr', {}, el('th', {}, 'Run'), el('th', {}, 'State'), el('th', {}, 'Started'), el('th', {}, 'Duration')),
      p.runs.map((r) => el('tr', {}, el('td', {}, el('a', { href: '#/r/' + r.id }, '#' + r.id)), el('td', {}, badge(r.state)),
                         el('td', {}, when(r.created)), el('td', {}, duration(r.duration_ms))))) : p.valid ? el('p', { class: 'muted' }, 'No runs yet.') : null));
  main().replaceChildren(el('h1', {}, 'Pipelines'), cards.length ? el('div', { class: 'grid' }, cards) : el('p', { class: 'muted' }, 'No pipeline files in the folder.'));
  listen(0, () => { if (location.hash === '' || location.hash === '#/') pipelinesPage().catch(showError); });
}

function paramInput(p) {
  const id = 'param-' + p.name;
  let input;
  if (p.enum) {
    input = el('select', { id, name: p.name }, p.enum.map((v) => el('option', { value: String(v), selected: v === p.default }, String(v))));
  } else if (p.type === 'bool') {
    input = el('input', { id, name: p.name, type: 'checkbox', checked: p.default === true });
  } else if (p.type === 'int' || p.type === 'float') {
    input = el('input', { id, name: p.name, type: 'number', step: p.type === 'int' ? '1' : 'any', min: p.min, max: p.max,
                          value: p.default === null ? '' : p.default, required: p.required });
  } else {
    input = el('input', { id, name: p.name, type: 'text', value: p.default === null ? '' : p.default, required: p.required });
  }
  const range = p.min !== undefined || p.max !== undefined ? ` ${p.min ?? '…'} to ${p.max ?? '…'}` : '';
  return el('div', {}, el('label', { for: id }, p.name, ' ', el('span', { class: 'hint' }, p.type + range + (p.description ? ' — ' + p.description : ''))), input);
}

// The form's values, typed; null and a message on the first bad one.
function readParams(form, params) {
  const out = {};
  for (const p of params) {
    const input = form.elements[p.name];
    input.classList.remove('bad');
    let v;
    if (p.type === 'bool' && !p.enum) v = input.checked;
    else if (p.type === 'int' || p.type === 'float') {
      if (input.value.trim() === '') { if (p.required) return [null, p.name + ' is required', input]; continue; }
      v = Number(input.value);
      if (!Number.isFinite(v) || (p.type === 'int' && !Number.isInteger(v))) return [null, `${p.name} must be ${p.type === 'int' ? 'an integer' : 'a number'}`, input];
      if (p.min !== undefined && v < p.min) return [null, `${p.name} must be at least ${p.min}`, input];
      if (p.max !== undefined && v > p.max) return [null, `${p.name} must be at most ${p.max}`, input];
    } else {
      v = input.value;
      if (p.enum && (p.type === 'int' || p.type === 'float')) v = Number(v);
      if (p.enum && p.type === 'bool') v = v === 'true';
      if (v === '' && p.required) return [null, p.name + ' is required', input];
    }
    out[p.name] = v;
  }
  return [out, '', null];
}

async function pipelinePage(name) {
  const p = await api('GET', '/api/pipelines/' + encodeURIComponent(name));
  const head = el('h1', {}, p.name);
  if (!p.valid) { main().replaceChildren(head, el('pre', { class: 'error' }, p.errors.join('\n'))); return; }
  const err = el('p', { class: 'error', id: 'run-error' });
  const form = el('form', { class: 'params', id: 'run-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const [values, message, bad] = readParams(form, p.params);
    if (!values) { err.textContent = message; bad.classList.add('bad'); bad.focus(); return; }
    err.textContent = '';
    try {
      const run = await api('POST', '/api/pipelines/' + encodeURIComponent(name) + '/runs', { params: values });
      location.hash = '#/r/' + run.id;
    } catch (x) { err.textContent = x.message; }
  } }, p.params.map(paramInput), el('div', { class: 'actions' },
    el('button', { class: 'primary', type: 'submit', id: 'run-button', disabled: state.scope === 'read' }, 'Run')), err);
  // Only the runs table follows live changes: the form keeps what is typed in it.
  const runsBox = el('div', { id: 'pipeline-runs' });
  const drawRuns = async () => {
    const runs = await api('GET', '/api/pipelines/' + encodeURIComponent(name) + '/runs?limit=20');
    runsBox.replaceChildren(runs.runs.length ? el('table', {}, el('tr', {}, el('th', {}, 'Run'), el('th', {}, 'State'), el('th', {}, 'Trigger'), el('th', {}, 'Created'), el('th', {}, 'Duration')),
      runs.runs.map((r) => el('tr', {}, el('td', {}, el('a', { href: '#/r/' + r.id }, '#' + r.id)), el('td', {}, badge(r.state)),
                         el('td', {}, r.trigger), el('td', {}, when(r.created)), el('td', {}, duration(r.duration_ms))))) : el('p', { class: 'muted' }, 'No runs yet.'));
  };
  await drawRuns();
  main().replaceChildren(head, p.description ? el('p', { class: 'muted' }, p.description) : null,
    el('div', { class: 'cols' },
      el('div', {}, el('h2', {}, 'DAG'), drawDag(p.dag, {}), el('h2', {}, 'Runs'), runsBox),
      el('div', {}, el('div', { class: 'card' }, el('h2', {}, 'Run with params'), p.params.length ? null : el('p', { class: 'muted' }, 'This pipeline has no params.'), form),
        p.schedules.length ? el('div', { class: 'card' }, el('h2', {}, 'Schedules'), p.schedules.map((s) => el('div', {},
          el('p', {}, `${s.cron} in ${s.timezone}` + (s.catchup ? '' : ' (no catch-up)')),
          el('ul', {}, s.next.map((t) => el('li', {}, when(t))))))) : null,
        p.webhook ? el('div', { class: 'card' }, el('h2', {}, 'Webhook'), el('p', {}, 'POST ', el('code', {}, p.webhook.path),
          ' signed with $' + p.webhook.secret_env)) : null)));
  listen(0, () => { if (location.hash === '#/p/' + encodeURIComponent(name)) drawRuns().catch(showError); });
}

async function runsPage() {
  const data = await api('GET', '/api/runs?limit=100');
  main().replaceChildren(el('h1', {}, 'Runs'), el('table', {},
    el('tr', {}, el('th', {}, 'Run'), el('th', {}, 'Pipeline'), el('th', {}, 'State'), el('th', {}, 'Trigger'), el('th', {}, 'Created'), el('th', {}, 'Duration')),
    data.runs.map((r) => el('tr', {}, el('td', {}, el('a', { href: '#/r/' + r.id }, '#' + r.id)), el('td', {}, r.pipeline), el('td', {}, badge(r.state)),
                        el('td', {}, r.trigger), el('td', {}, when(r.created)), el('td', {}, duration(r.duration_ms))))));
  listen(0, () => { if (location.hash === '#/runs') runsPage().catch(showError); });
}

function gantt(run) {
  const attempts = run.attempts.filter((a) => a.started_ms);
  if (!attempts.length) return el('p', { class: 'muted' }, 'No attempts yet.');
  const t0 = Math.min(...attempts.map((a) => a.started_ms));
  const now = Date.now();
  const t1 = Math.max(...attempts.map((a) => a.finished_ms || now), t0 + 1);
  return el('div', { class: 'gantt' }, attempts.map((a) => {
    const left = ((a.started_ms - t0) / (t1 - t0)) * 100, right = (((a.finished_ms || now) - t0) / (t1 - t0)) * 100;
    const name = a.step + (a.item >= 0 ? `[${a.item}]` : '') + ' #' + a.number;
    const bar = el('div', { class: 'bar ' + a.state, title: `${name}: ${a.state}, ${duration((a.finished_ms || now) - a.started_ms)}` });
    bar.style.left = left + '%';  // CSSOM, which the page's CSP allows (style attributes it does not)
    bar.style.width = Math.max(0.3, right - left) + '%';
    return el('div', { class: 'lane' }, el('div', { class: 'label', title: name }, name),
      el('div', { class: 'row' }, bar));
  }));
}

function stepPanel(run, stepId) {
  const step = run.steps.find((s) => s.id === stepId);
  if (!step) return el('p', { class: 'muted' }, 'Click a step to see its attempts and log.');
  const attempts = run.attempts.filter((a) => a.step === stepId);
  const metrics = run.metrics.filter((m) => m.step === stepId);
  const latest = attempts[attempts.length - 1];
  const log = el('pre', { id: 'step-log' }, latest ? '' : 'No attempt yet.');
  const panel = el('div', { class: 'card', id: 'step-panel' }, el('h2', {}, 'Step ', step.id, ' ', badge(step.state)),
    step.reason ? el('p', { class: 'error' }, step.reason) : null,
    el('table', {}, el('tr', {}, el('th', {}, 'Attempt'), el('th', {}, 'State'), el('th', {}, 'Exit'), el('th', {}, 'Why'), el('th', {}, 'Took'),
                      attempts.some((a) => a.job_id) ? el('th', {}, 'Job') : null),
      attempts.map((a) => el('tr', {}, el('td', {}, (a.item >= 0 ? `[${a.item}] ` : '') + '#' + a.number), el('td', {}, badge(a.state)),
                         el('td', {}, a.exit_code >= 0 ? a.exit_code : '–'), el('td', {}, a.reason),
                         el('td', {}, a.finished_ms ? duration(a.finished_ms - a.started_ms) : 'running'),
                         attempts.some((x) => x.job_id) ? el('td', {}, a.job_id || '–') : null))),
    step.outputs && Object.keys(step.outputs).length ? el('div', {}, el('h2', {}, 'Outputs'),
      el('dl', { class: 'kv' }, Object.entries(step.outputs).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, typeof v === 'string' ? v : JSON.stringify(v))]))) : null,
    metrics.length ? el('div', {}, el('h2', {}, 'Metrics'), el('dl', { class: 'kv' }, metrics.flatMap((m) => [el('dt', {}, m.name + (m.step_index ? ' @' + m.step_index : '')), el('dd', {}, String(m.value))]))) : null,
    el('h2', {}, 'Log', latest ? ` (attempt ${latest.number}${latest.item >= 0 ? ', item ' + latest.item : ''})` : ''), log);
  if (latest) followLog(run.id, latest, log);
  return panel;
}

// Shows an attempt's log: the whole of it once finished, else live. The
// text is kept across redraws of the run page, so the log never flickers.
function followLog(runId, attempt, pre) {
  if (state.logStream) { state.logStream.close(); state.logStream = null; }
  const key = `${runId}/${attempt.step}/${attempt.item}/${attempt.number}`;
  if (!state.logCache || state.logCache.key !== key) state.logCache = { key, text: '', offset: 0, done: false };
  const c = state.logCache;
  const show = () => { pre.textContent = c.text || (c.done ? '(empty)' : ''); pre.scrollTop = pre.scrollHeight; };
  show();
  if (c.done) return;
  const base = `/api/runs/${runId}/steps/${encodeURIComponent(attempt.step)}/log?attempt=${attempt.number}&item=${attempt.item}`;
  if (attempt.state !== 'running') {
    fetch(base, { credentials: 'same-origin' }).then((r) => (r.ok ? r.text() : '')).then((t) => {
      c.text = t;
      c.done = true;
      show();
    });
    return;
  }
  const es = new EventSource(base + '&follow=1&offset=' + c.offset);
  es.addEventListener('log', (e) => {
    const d = JSON.parse(e.data);
    c.text += d.text;
    c.offset = d.offset;
    show();
  });
  es.addEventListener('end', () => { c.done = true; es.close(); show(); });
  es.onerror = () => es.close();
  state.logStream = es;
}

// A run that may still change: queued (behind a max_active_runs cap), pending or running.
function isLive(runState) { return runState === 'queued' || runState === 'pending' || runState === 'running'; }

async function runPage(id) {
  const run = await api('GET', '/api/runs/' + id);
  state.run = run;
  const live = isLive(run.state);
  const act = el('div', { class: 'actions' },
    el('button', { class: 'danger', id: 'cancel-button', disabled: !live || state.scope === 'read', onclick: async () => {
      try { await api('POST', `/api/runs/${id}/cancel`); } catch (x) { showError(x); } } }, 'Cancel'),
    el('button', { id: 'retry-button', disabled: live || run.state === 'succeeded' || state.scope === 'read', onclick: async () => {
      try { await api('POST', `/api/runs/${id}/retry`); } catch (x) { showError(x); } } }, 'Retry failed steps'),
    run.driver_log ? el('a', { class: 'button', href: `/api/runs/${id}/log`, target: '_blank' }, 'Run log') : null);
  const params = Object.entries(run.params);
  const select = (sid) => { state.selected = sid; renderRun(); };
  const renderRun = () => {
    const r = state.run;
    main().replaceChildren(
      el('h1', {}, `Run #${r.id} · `, el('a', { href: '#/p/' + encodeURIComponent(r.pipeline) }, r.pipeline), ' ', el('span', { id: 'run-state' }, badge(r.state))),
      el('p', { class: 'muted' }, `${r.trigger} · created ${when(r.created)} · ${duration(r.duration_ms)}` + (r.cancel_requested && live ? ' · cancelling' : '')),
      params.length ? el('p', {}, 'Params: ', params.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('  ')) : null,
      act,
      el('div', { class: 'cols' },
        el('div', {}, el('h2', {}, 'DAG'), drawDag(r.steps, { selected: state.selected, onSelect: select }),
          el('h2', {}, 'Timeline'), gantt(r)),
        el('div', {}, stepPanel(r, state.selected))));
  };
  renderRun();
  listen(id, async () => {
    if (location.hash !== '#/r/' + id) return;
    try {
      const fresh = await api('GET', '/api/runs/' + id);
      const wasLive = isLive(state.run.state);
      state.run = fresh;
      const nowLive = isLive(fresh.state);
      if (wasLive !== nowLive) { closeStreams(); runPage(id).catch(showError); return; }
      renderRun();
    } catch (x) { showError(x); }
  });
}

function showError(x) {
  if (x instanceof ApiError && x.status === 401) return;
  const box = document.getElementById('page-error') || el('p', { class: 'error', id: 'page-error' });
  box.textContent = x.message || String(x);
  main().prepend(box);
}

async function route() {
  closeStreams();
  const h = location.hash || '#/';
  try {
    if (!state.csrf) {
      const s = await fetch('/api/session', { credentials: 'same-origin' });
      const data = await s.json();
      if (!s.ok || !data.scope) { showLogin(''); return; }
      state.csrf = data.csrf; state.scope = data.scope;
      setWho(data);
    }
    let m;
    if ((m = h.match(/^#\/p\/(.+)$/))) await pipelinePage(decodeURIComponent(m[1]));
    else if ((m = h.match(/^#\/r\/(\d+)$/))) { state.selected = null; await runPage(Number(m[1])); }
    else if (h === '#/runs') await runsPage();
    else await pipelinesPage();
  } catch (x) { showError(x); }
}

window.addEventListener('hashchange', route);
route();
