// A run's page (#/r/ID): its DAG drawn live, a timeline of its attempts, the
// run's outputs once it has them, its artifacts (read again when the run
// ends), and
// for the step clicked its attempts, exit reasons, outputs, metrics and its
// log tailing live; Cancel and Retry failed steps; Approve or Reject a step
// waiting for approval (sluice/approval), with the values it asks for.
import { api, closeLogStream, closeStreams, fetchText, followLog, listen, session } from './api.js';
import { artifactTable } from './artifacts.js';
import { formatMetric, indexChart } from './charts.js';
import { dagView } from './dag.js';
import { badge, duration, el, main, showError, when } from './dom.js';
import { paramInput, readParams } from './params.js';

export const path = /^#\/r\/(\d+)$/;

// The run as last read, the step clicked (kept while the page redraws itself;
// none on arriving) and the log shown, with its text so far.
const view = { run: null, selected: null, log: null };

export function show(match) {
  view.selected = null;
  return runPage(Number(match[1]));
}

const GANTT_LANES = 200;  // the latest attempts drawn: a lane each

function gantt(run) {
  const started = run.attempts.filter((a) => a.started_ms);
  if (!started.length) return el('p', { class: 'muted' }, 'No attempts yet.');
  const attempts = started.length > GANTT_LANES ? started.slice(-GANTT_LANES) : started;
  const t0 = Math.min(...attempts.map((a) => a.started_ms));
  const now = Date.now();
  const t1 = Math.max(...attempts.map((a) => a.finished_ms || now), t0 + 1);
  const note = attempts.length < started.length
    ? el('p', { class: 'muted', id: 'gantt-note' }, `The latest ${attempts.length} of ${started.length} attempts.`) : null;
  return el('div', { class: 'gantt' }, note, attempts.map((a) => {
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
    step.reason ? el('p', { class: ['failed', 'cancelled'].includes(step.state) ? 'error' : 'muted' }, step.reason) : null,
    el('table', {}, el('tr', {}, el('th', {}, 'Attempt'), el('th', {}, 'State'), el('th', {}, 'Exit'), el('th', {}, 'Why'), el('th', {}, 'Took'),
                      attempts.some((a) => a.job_id) ? el('th', {}, 'Job') : null),
      attempts.map((a) => el('tr', {}, el('td', {}, (a.item >= 0 ? `[${a.item}] ` : '') + '#' + a.number), el('td', {}, badge(a.state)),
                         el('td', {}, a.exit_code >= 0 ? a.exit_code : '–'), el('td', {}, a.reason),
                         el('td', {}, a.finished_ms ? duration(a.finished_ms - a.started_ms) : 'running'),
                         attempts.some((x) => x.job_id) ? el('td', {}, a.job_id || '–') : null))),
    step.outputs && Object.keys(step.outputs).length ? el('div', {}, el('h2', {}, 'Outputs'),
      el('dl', { class: 'kv' }, Object.entries(step.outputs).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, typeof v === 'string' ? v : JSON.stringify(v))]))) : null,
    metrics.length ? el('div', {}, el('h2', {}, 'Metrics'), metricCharts(metrics)) : null,
    el('h2', {}, 'Log', latest ? ` (attempt ${latest.number}${latest.item >= 0 ? ', item ' + latest.item : ''})` : ''), log);
  if (latest) showLog(run.id, latest, log);
  return panel;
}

// A step's metrics: a chart over the index (epoch) for each metric measured
// at more than one index, a line per attempt (and item); the rest as name =
// value, the last measured.
function metricCharts(metrics) {
  const byName = new Map();
  // A value that is not a number (the API writes an infinity as null) is left out.
  for (const m of metrics) if (typeof m.value === 'number') (byName.get(m.name) || byName.set(m.name, []).get(m.name)).push(m);
  const charts = [], values = [];
  for (const [name, ms] of byName) {
    if (new Set(ms.map((m) => m.index)).size < 2) {
      values.push(el('dt', {}, name), el('dd', {}, String(ms[ms.length - 1].value)));
      continue;
    }
    const lines = new Map();
    for (const m of ms) {
      const key = (m.item >= 0 ? `[${m.item}] ` : '') + 'attempt ' + m.attempt;
      (lines.get(key) || lines.set(key, []).get(key)).push({ i: m.index, v: m.value });
    }
    charts.push(indexChart([...lines].map(([key, points], k) => ({ name: key, colour: k % 6, points: points.sort((a, b) => a.i - b.i) })),
      { label: name, indexName: 'epoch', format: formatMetric }));
  }
  return el('div', {}, charts.length ? el('div', { class: 'charts metric-charts' }, charts) : null,
    values.length ? el('dl', { class: 'kv' }, values) : null);
}

// Shows an attempt's log: the whole of it once finished, else live. The
// text is kept across redraws of the run page, so the log never flickers.
function showLog(runId, attempt, pre) {
  closeLogStream();
  const key = `${runId}/${attempt.step}/${attempt.item}/${attempt.number}`;
  if (!view.log || view.log.key !== key) view.log = { key, text: '', offset: 0, done: false };
  const c = view.log;
  const show = () => { pre.textContent = c.text || (c.done ? '(empty)' : ''); pre.scrollTop = pre.scrollHeight; };
  show();
  if (c.done) return;
  const base = `/api/runs/${runId}/steps/${encodeURIComponent(attempt.step)}/log?attempt=${attempt.number}&item=${attempt.item}`;
  if (attempt.state !== 'running') {
    fetchText(base).then((t) => {
      c.text = t;
      c.done = true;
      show();
    });
    return;
  }
  followLog(base, c.offset, (d) => {
    c.text += d.text;
    c.offset = d.offset;
    show();
  }, () => { c.done = true; show(); });
}

// A card for a step waiting for approval: its message, an input for each
// value it asks for, a comment, and Approve / Reject. Drawn once per waiting
// step, so a redraw of the page keeps what is typed in it.
function approvalCard(runId, a) {
  const err = el('p', { class: 'error approval-error' });
  const form = el('form', { class: 'params', novalidate: true }, a.values.map((v) => paramInput(v, `value-${a.step}-`)),
    el('label', { for: `comment-${a.step}` }, 'Comment'), el('input', { id: `comment-${a.step}`, name: '_comment', type: 'text' }));
  const decide = async (decision) => {
    let values = {};
    if (decision === 'approve') {
      const [read, message, bad] = readParams(form, a.values);
      if (!read) { err.textContent = message; bad.classList.add('bad'); bad.focus(); return; }
      values = read;
    }
    err.textContent = '';
    try {
      await api('POST', `/api/runs/${runId}/steps/${encodeURIComponent(a.step)}/approval`,
                { decision, values, comment: form.elements._comment.value });
    } catch (x) { err.textContent = x.message; }
  };
  const readOnly = session.scope === 'read';
  return el('div', { class: 'card approval', 'data-step': a.step },
    el('h2', {}, 'Step ', a.step, ' is waiting for approval'),
    a.message ? el('p', { class: 'approval-message' }, a.message) : null,
    a.deadline_ms ? el('p', { class: 'muted' }, `${a.on_timeout === 'approve' ? 'Approved' : 'Rejected'} on its own at ${new Date(a.deadline_ms).toLocaleString()}.`) : null,
    form,
    el('div', { class: 'actions' },
      el('button', { class: 'primary approve-button', type: 'button', disabled: readOnly, onclick: () => decide('approve') }, 'Approve'),
      el('button', { class: 'danger reject-button', type: 'button', disabled: readOnly, onclick: () => decide('reject') }, 'Reject')),
    err);
}

// The run's outputs (the spec's `outputs:`), once its steps are all final: a
// value, or why it is absent. Text nodes only, as everywhere on the page.
function runOutputs(outputs) {
  if (!outputs || !outputs.length) return null;
  return el('div', { class: 'card', id: 'run-outputs' }, el('h2', {}, 'Outputs'),
    el('dl', { class: 'kv' }, outputs.flatMap((o) => [el('dt', {}, o.name),
      o.value === null ? el('dd', { class: 'muted' }, 'none: ', o.reason) : el('dd', {}, o.value)])));
}

// A run that may still change: queued (behind a max_active_runs cap), pending or running.
function isLive(runState) { return runState === 'queued' || runState === 'pending' || runState === 'running'; }

async function runPage(id) {
  const run = await api('GET', '/api/runs/' + id);
  view.run = run;
  const live = isLive(run.state);
  const act = el('div', { class: 'actions' },
    el('button', { class: 'danger', id: 'cancel-button', disabled: !live || session.scope === 'read', onclick: async () => {
      try { await api('POST', `/api/runs/${id}/cancel`); } catch (x) { showError(x); } } }, 'Cancel'),
    el('button', { id: 'retry-button', disabled: live || run.state === 'succeeded' || session.scope === 'read', onclick: async () => {
      try { await api('POST', `/api/runs/${id}/retry`); } catch (x) { showError(x); } } }, 'Retry failed steps'),
    run.driver_log ? el('a', { class: 'button', href: `/api/runs/${id}/log`, target: '_blank' }, 'Run log') : null);
  const params = Object.entries(run.params);
  const select = (sid) => { view.selected = sid; renderRun(); };
  // Drawn once, then brought up to date: the DAG keeps its layout and scroll.
  const dag = dagView({ onSelect: select });
  const title = el('h1'), meta = el('p', { class: 'muted' }), timeline = el('div'), panel = el('div');
  const approvals = el('div', { id: 'approvals' });
  const outputs = el('div');
  let approvalsKey = null;
  const shown = params.length ? el('p', {}, 'Params: ', params.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('  ')) : '';
  const artifacts = el('div', { class: 'card', id: 'run-artifacts' }, el('h2', {}, 'Artifacts'), el('p', { class: 'muted' }, 'Loading…'));
  main().replaceChildren(title, meta, shown, act, approvals, outputs,
    el('div', { class: 'cols' },
      el('div', {}, el('h2', {}, 'DAG'), dag.el, el('h2', {}, 'Timeline'), timeline),
      panel), artifacts);
  api('GET', `/api/runs/${id}/artifacts`)
    .then((a) => artifacts.replaceChildren(el('h2', {}, 'Artifacts'), artifactTable(id, a.artifacts)))
    .catch(showError);
  let byId = new Map();
  const renderRun = () => {
    const r = view.run;
    byId = new Map(r.steps.map((s) => [s.id, s]));
    title.replaceChildren(`Run #${r.id} · `, el('a', { href: '#/p/' + encodeURIComponent(r.pipeline) }, r.pipeline), ' ', el('span', { id: 'run-state' }, badge(r.state)));
    meta.textContent = `${r.trigger} · created ${when(r.created)} · ${duration(r.duration_ms)}` + (r.cancel_requested && live ? ' · cancelling' : '');
    dag.update(r.steps, view.selected);
    timeline.replaceChildren(gantt(r));
    outputs.replaceChildren(...[runOutputs(r.outputs)].filter(Boolean));
    panel.replaceChildren(stepPanel(r, view.selected));
    const waiting = isLive(r.state) ? (r.approvals || []).filter((a) => a.decision === null && byId.get(a.step)?.state === 'running') : [];
    const key = waiting.map((a) => a.step).join('\n');
    if (key !== approvalsKey) {
      approvalsKey = key;
      approvals.replaceChildren(...waiting.map((a) => approvalCard(r.id, a)));
    }
  };
  renderRun();
  if (live) dag.reveal((s) => s.state === 'running');  // a big run's work is seldom in the first columns
  // A step event changes its box at once; the rest waits for the next read.
  const onStep = (d) => {
    const s = d.item === -1 && byId.get(d.step);
    if (!s) return;
    s.state = d.state;
    s.attempts = d.attempts;
    dag.redrawSoon();
  };
  listen(id, async () => {
    if (location.hash !== '#/r/' + id) return;
    try {
      const fresh = await api('GET', '/api/runs/' + id);
      const wasLive = isLive(view.run.state);
      view.run = fresh;
      const nowLive = isLive(fresh.state);
      if (wasLive !== nowLive) { closeStreams(); runPage(id).catch(showError); return; }
      renderRun();
    } catch (x) { showError(x); }
  }, onStep);
}
