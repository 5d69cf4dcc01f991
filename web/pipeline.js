// A pipeline's page (#/p/NAME): its DAG before any run, a Run form built from
// its params (checked here, and again by the server), its runs, schedules and
// webhook.
import { api, listen, session } from './api.js';
import { drawDag } from './dag.js';
import { badge, duration, el, main, showError, when } from './dom.js';

export const path = /^#\/p\/(.+)$/;

export function show(match) { return pipelinePage(decodeURIComponent(match[1])); }

// A param's label and input: a select for an enum, a checkbox for a bool, a
// number box with its min and max, else a text box; each with its default.
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
