// A pipeline's page (#/p/NAME): its DAG before any run, a Run form built from
// its params (checked here, and again by the server), its runs, schedules and
// webhook.
import { api, listen, session } from './api.js';
import { drawDag } from './dag.js';
import { badge, duration, el, main, showError, when } from './dom.js';
import { paramInput, readParams } from './params.js';

export const path = /^#\/p\/(.+)$/;

export function show(match) { return pipelinePage(decodeURIComponent(match[1])); }

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
  } }, p.params.map((x) => paramInput(x)), el('div', { class: 'actions' },
    el('button', { class: 'primary', type: 'submit', id: 'run-button', disabled: session.scope === 'read' }, 'Run')), err);
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
