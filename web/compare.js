// Run comparison (#/compare?runs=3,5,8): 2 to 5 runs of one pipeline side
// by side, MLflow's compare view without MLflow. Their params in one table
// (a value unlike the first run's is marked), the final value of each
// metric, and each metric measured over an index (the epoch) drawn as one
// chart with a line per run. Everything comes from GET /api/runs/{id}.
import { api } from './api.js';
import { formatMetric, indexChart } from './charts.js';
import { badge, el, main, when } from './dom.js';

export const path = /^#\/compare\?runs=([0-9,]*)$/;

export const MIN_RUNS = 2, MAX_RUNS = 5;

export async function show(match) {
  const ids = [...new Set(match[1].split(',').filter(Boolean).map(Number))];
  const title = el('h1', {}, 'Compare runs');
  if (ids.length < MIN_RUNS || ids.length > MAX_RUNS) {
    main().replaceChildren(title, el('p', { class: 'error', id: 'compare-error' },
      `Pick ${MIN_RUNS} to ${MAX_RUNS} runs to compare; this link names ${ids.length}.`));
    return;
  }
  const runs = await Promise.all(ids.map((id) => api('GET', '/api/runs/' + id)));
  const pipelines = [...new Set(runs.map((r) => r.pipeline))];
  if (pipelines.length > 1) {
    main().replaceChildren(title, el('p', { class: 'error', id: 'compare-error' },
      'Runs of one pipeline are compared; these are of ' + pipelines.join(', ') + '.'));
    return;
  }
  const curves = metricCurves(runs);
  main().replaceChildren(title,
    el('p', {}, 'Pipeline ', el('a', { href: '#/p/' + encodeURIComponent(pipelines[0]) }, pipelines[0])),
    el('div', { class: 'scroll' }, el('table', { id: 'compare-runs' },
      el('tr', {}, el('th', {}, ''), runs.map((r) => el('th', {}, el('a', { href: '#/r/' + r.id }, '#' + r.id)))),
      el('tr', {}, el('th', {}, 'State'), runs.map((r) => el('td', {}, badge(r.state)))),
      el('tr', {}, el('th', {}, 'Created'), runs.map((r) => el('td', {}, when(r.created)))))),
    el('h2', {}, 'Params'), sideBySide('compare-params', 'Param', runs, rows(runs, (r) => Object.entries(r.params || {}))),
    el('h2', {}, 'Final metrics'), sideBySide('compare-metrics', 'Step · metric', runs, rows(runs, finalMetrics)),
    curves.length ? el('div', {}, el('h2', {}, 'Curves'),
      el('div', { class: 'legend' }, runs.map((r, k) => el('span', { class: 'key' }, el('span', { class: 'swatch c' + (k % 6) }), '#' + r.id))),
      el('div', { class: 'charts metric-charts', id: 'compare-curves' }, curves)) : null);
}

// [[key, [value of each run, undefined where it has none]]], keys in first-seen order.
function rows(runs, entriesOf) {
  const out = new Map();
  runs.forEach((r, k) => {
    for (const [key, v] of entriesOf(r)) {
      if (!out.has(key)) out.set(key, new Array(runs.length).fill(undefined));
      out.get(key)[k] = v;
    }
  });
  return [...out];
}

// A table with a row per key and a column per run; a cell unlike the first
// run's is marked `differs`.
function sideBySide(id, head, runs, rowList) {
  if (!rowList.length) return el('p', { class: 'muted', id }, 'None.');
  const text = (v) => (v === undefined ? '–' : typeof v === 'string' ? v : JSON.stringify(v));
  return el('div', { class: 'scroll' }, el('table', { id, class: 'compare' },
    el('tr', {}, el('th', {}, head), runs.map((r) => el('th', {}, '#' + r.id))),
    rowList.map(([key, values]) => el('tr', { 'data-key': key }, el('th', {}, key),
      values.map((v, k) => el('td', { class: k > 0 && text(v) !== text(values[0]) ? 'differs' : '' }, text(v)))))));
}

// The last value of each metric of a run: its last attempt's (per step and
// item), at the highest index.
function finalMetrics(run) {
  const last = new Map();
  for (const m of run.metrics) {
    if (typeof m.value !== 'number') continue;
    const key = m.step + (m.item >= 0 ? `[${m.item}]` : '') + ' · ' + m.name;
    const seen = last.get(key);
    if (!seen || m.attempt > seen.attempt || (m.attempt === seen.attempt && m.index >= seen.index)) last.set(key, m);
  }
  return [...last].map(([key, m]) => [key, m.value]);
}

// A chart per metric measured at two or more indexes in some run, a line per
// run (its last attempt of the step).
function metricCurves(runs) {
  const byKey = new Map();
  runs.forEach((r, k) => {
    const lastAttempt = new Map();
    for (const m of r.metrics) if (typeof m.value === 'number') lastAttempt.set(m.step, Math.max(lastAttempt.get(m.step) || 0, m.attempt));
    for (const m of r.metrics) {
      if (typeof m.value !== 'number' || m.attempt !== lastAttempt.get(m.step)) continue;
      const key = m.step + (m.item >= 0 ? `[${m.item}]` : '') + ' · ' + m.name;
      if (!byKey.has(key)) byKey.set(key, runs.map(() => []));
      byKey.get(key)[k].push({ i: m.index, v: m.value });
    }
  });
  const charts = [];
  for (const [key, perRun] of byKey) {
    if (!perRun.some((points) => new Set(points.map((p) => p.i)).size > 1)) continue;
    const lines = perRun.map((points, k) => ({ name: '#' + runs[k].id, colour: k % 6, points: points.sort((a, b) => a.i - b.i) }))
      .filter((l) => l.points.length);
    charts.push(indexChart(lines, { label: key, indexName: 'epoch', format: formatMetric }));
  }
  return charts;
}
