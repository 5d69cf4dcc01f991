// A service's page (#/services/NAME): its versions and live weights, each
// version's requests/s, error rate and p99 over the last 30 minutes as small
// charts (GET /api/services/NAME/series), its replicas, and its active (or
// last) rollout: the strategy's steps, where it is, its events with the
// analyses' figures, and Promote / Abort while it is active (scope run).
// Everything is read again every 2 s; a rollout's events are polled with
// ?after= the last one seen.
import { api, poll, session } from './api.js';
import { lineChart } from './charts.js';
import { badge, el, main, showError, when } from './dom.js';
import { ms, percent, rate, weightsBar } from './services.js';

export const path = /^#\/services\/([^/]+)$/;

const SPAN_MS = 30 * 60 * 1000;
// The rollout shown and its events so far; the last answer to a button.
const view = { name: '', rollout: null, events: [], answer: null };

export async function show(match) {
  const name = decodeURIComponent(match[1]);
  if (view.name !== name) Object.assign(view, { name, rollout: null, events: [], answer: null });
  const hash = location.hash;
  const draw = async () => {
    const to = Date.now();
    const [service, series, rollouts] = await Promise.all([
      api('GET', '/api/services/' + encodeURIComponent(name)),
      api('GET', `/api/services/${encodeURIComponent(name)}/series?from_ms=${to - SPAN_MS}&to_ms=${to}`),
      api('GET', `/api/services/${encodeURIComponent(name)}/rollouts?limit=10`)]);
    const shown = rollouts.rollouts.find((r) => r.active) || rollouts.rollouts[0] || null;
    if (shown) {
      if (!view.rollout || view.rollout.id !== shown.id) view.events = [];
      const after = view.events.length ? view.events[view.events.length - 1].id : 0;
      const fresh = await api('GET', `/api/rollouts/${shown.id}?after=${after}`);
      view.events = view.events.concat(fresh.events);
      delete fresh.events;
      view.rollout = fresh;
    } else view.rollout = null;
    if (location.hash !== hash) return;
    render(service, series, rollouts.rollouts);
  };
  await draw();
  poll(() => draw().catch(showError), 2000);
}

function render(s, series, rollouts) {
  const colour = {};
  s.versions.forEach((v, i) => { colour[v.name] = i % 6; });
  main().replaceChildren(
    el('h1', {}, el('a', { href: '#/services' }, 'Services'), ' / ', s.name),
    el('p', { class: 'muted' }, `generation ${s.generation} · applied ${when(s.updated_ms)}` +
       (s.traffic_owner ? ' · weights driven by ' + s.traffic_owner : '') + (s.gateway ? '' : ' · no gateway running')),
    el('h2', {}, 'Live weights'), weightsBar(s.versions),
    el('div', { class: 'legend' }, s.versions.map((v) => el('span', { class: 'key' }, el('span', { class: 'swatch c' + colour[v.name] }), `${v.name} ${v.weight}%`))),
    versionsTable(s),
    el('h2', {}, 'Last 30 minutes'), charts(series, colour),
    rolloutCard(view.rollout, view.events),
    replicasTable(s),
    ...(rollouts.length > 1 ? [olderRollouts(rollouts)] : []));  // replaceChildren would show a null as text
}

function versionsTable(s) {
  return el('div', { class: 'scroll' }, el('table', { id: 'versions' },
    el('tr', {}, ['Version', 'Runs', 'Rev', 'Weight', 'Replicas', 'State', 'Req/s', 'Errors', 'p50', 'p99'].map((h) => el('th', {}, h))),
    s.versions.map((v) => el('tr', { 'data-version': v.name },
      el('td', {}, v.name), el('td', { class: 'muted wrap' }, v.kind === 'command' ? v.command.join(' ') : v.model.ref || v.model.uri),
      el('td', {}, v.revision), el('td', { class: 'weight' }, v.weight + '%'), el('td', {}, v.replicas), el('td', {}, v.state),
      el('td', {}, rate(v.last_minute.requests_per_s)), el('td', {}, percent(v.last_minute.error_rate)),
      el('td', {}, ms(v.last_minute.p50_ms)), el('td', {}, ms(v.last_minute.p99_ms))))));
}

function charts(series, colour) {
  const live = series.series.filter((x) => x.role === 'live');
  const lines = (key) => live.map((x) => ({ name: x.version, colour: colour[x.version] ?? 5,
                                           points: x.points.map((p) => ({ t: p.start_ms, v: p[key] })) }));
  const opts = { from: series.from_ms, to: series.to_ms, step: series.window_ms };
  return el('div', { class: 'charts', id: 'charts' },
    lineChart(lines('requests_per_s'), { ...opts, label: 'Requests/s', format: (v) => String(+v.toFixed(1)) }),
    lineChart(lines('error_rate'), { ...opts, label: 'Error rate', format: (v) => +(v * 100).toFixed(2) + '%' }),
    lineChart(lines('p99_ms'), { ...opts, label: 'p99 latency', format: (v) => v + ' ms' }));
}

function replicasTable(s) {
  const rows = s.versions.flatMap((v) => v.replica_rows.map((r) => ({ version: v.name, ...r })));
  return el('div', {}, el('h2', {}, 'Replicas'), rows.length ? el('div', { class: 'scroll' }, el('table', { id: 'replicas' },
    el('tr', {}, ['Version', 'Slot', 'State', 'Pid', 'Port', 'Restarts', 'Last exit'].map((h) => el('th', {}, h))),
    rows.map((r) => el('tr', {}, el('td', {}, r.version), el('td', {}, r.slot), el('td', {}, badge(r.state)),
      el('td', {}, r.pid ?? '–'), el('td', {}, r.port ?? '–'), el('td', {}, r.restarts), el('td', { class: 'wrap' }, r.last_exit ?? '')))))
    : el('p', { class: 'muted' }, 'No replicas: no gateway has started this service.'));
}

// The strategy's steps from its config (canary: weights and pauses).
function steps(r) {
  const list = (r.config && Array.isArray(r.config.steps)) ? r.config.steps : [];
  if (!list.length) return null;
  return el('ol', { class: 'steps' }, list.map((st, i) => el('li', {
    class: i < r.step_index ? 'done' : i === r.step_index ? 'current' : '' },
  Object.entries(st).map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', '))));
}

// An event's figures: its data as key=value, nested values as JSON.
function figures(data) {
  if (data === null || data === undefined) return '';
  if (typeof data !== 'object') return String(data);
  return Object.entries(data).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join('  ');
}

async function ask(r, what) {
  try {
    const a = await api('POST', `/api/services/${encodeURIComponent(r.service)}/${what}`);
    view.answer = { ok: true, text: `${a.request} requested of rollout ${a.rollout}; the deploy step takes it on its next look.` };
  } catch (x) {
    if (x.handled) return;
    view.answer = { ok: false, text: x.message };
  }
  const box = document.getElementById('rollout-answer');
  if (box) { box.textContent = view.answer.text; box.className = view.answer.ok ? 'answer' : 'error'; }
}

function rolloutCard(r, events) {
  if (!r) return el('div', { class: 'card', id: 'rollout' }, el('h2', {}, 'Rollout'), el('p', { class: 'muted' }, 'No rollout yet: a deploy/* step of a pipeline makes one.'));
  const mayAct = session.scope === 'run' || session.scope === 'admin';
  return el('div', { class: 'card', id: 'rollout', 'data-rollout': r.id, 'data-state': r.state },
    el('h2', {}, `Rollout #${r.id} · ${r.strategy} of ${r.candidate_version}` + (r.stable_version ? ` over ${r.stable_version}` : '') + ' ',
      badge(r.state)),
    el('p', { class: 'muted' }, `run `, el('a', { href: '#/r/' + r.run_id }, '#' + r.run_id), ` step ${r.step_id} · started ${when(r.started_ms)}` +
       (r.ended_ms ? ` · ended ${when(r.ended_ms)}` : '')),
    el('dl', { class: 'kv' }, el('dt', {}, 'Step'), el('dd', {}, String(r.step_index + 1)),
      el('dt', {}, 'Candidate weight'), el('dd', { id: 'candidate-weight' }, r.candidate_percent + '%'),
      r.reason ? [el('dt', {}, 'Reason'), el('dd', {}, r.reason)] : null,
      r.request ? [el('dt', {}, 'Requested'), el('dd', { id: 'rollout-request' }, `${r.request} by ${r.request_actor} (pending)`)] : null),
    steps(r),
    r.active ? el('div', { class: 'actions' },
      el('button', { class: 'primary', id: 'promote-button', disabled: !mayAct, onclick: () => ask(r, 'promote') }, 'Promote'),
      el('button', { class: 'danger', id: 'abort-button', disabled: !mayAct, onclick: () => ask(r, 'abort') }, 'Abort')) : null,
    el('p', { id: 'rollout-answer', class: view.answer ? (view.answer.ok ? 'answer' : 'error') : 'answer' }, view.answer ? view.answer.text : ''),
    el('h2', {}, 'Events'),
    el('div', { class: 'scroll' }, el('table', { id: 'rollout-events' },
      el('tr', {}, ['Time', 'Kind', 'What', 'Figures'].map((h) => el('th', {}, h))),
      events.slice().reverse().map((e) => el('tr', { 'data-kind': e.kind },
        el('td', {}, when(e.at)), el('td', {}, el('span', { class: 'badge ev-' + e.kind }, e.kind)), el('td', { class: 'wrap' }, e.message),
        el('td', { class: 'figures wrap' }, figures(e.data)))))));
}

function olderRollouts(rollouts) {
  return el('div', {}, el('h2', {}, 'Rollouts'), el('div', { class: 'scroll' }, el('table', {},
    el('tr', {}, ['#', 'Strategy', 'Candidate', 'State', 'Started', 'Reason'].map((h) => el('th', {}, h))),
    rollouts.map((r) => el('tr', {}, el('td', {}, r.id), el('td', {}, r.strategy), el('td', {}, r.candidate_version),
      el('td', {}, badge(r.state)), el('td', {}, when(r.started_ms)), el('td', { class: 'wrap' }, r.reason))))));
}
