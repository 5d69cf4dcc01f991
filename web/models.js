// The model registry's pages: #/models, every registered model with its
// versions, aliases, key metrics and the run that made each; #/models/NAME,
// one model's versions with all their metrics, its aliases (and who moved
// them), the pictures its evaluation wrote (downstream of the version the
// production alias or else the newest points at, shown only as <img>), a
// link to each version's lineage, and "Set alias" (scope run), which is
// `sluice models promote`.
import { api, session } from './api.js';
import { pictures } from './artifacts.js';
import { el, main, when } from './dom.js';

export const path = /^#\/models(?:\/([^/?]+))?$/;

export function show(match) {
  return match && match[1] ? modelPage(decodeURIComponent(match[1])) : listPage();
}

const number = (v) => (Math.abs(v) >= 100 || Number.isInteger(v) ? String(v) : v.toPrecision(4));
const metricText = (metrics) => Object.entries(metrics).map(([k, v]) => `${k}=${number(v)}`).join('  ');
const runLink = (v) => (v.run ? el('a', { href: '#/r/' + v.run }, `#${v.run}`, v.step ? ' · ' + v.step : '') : el('span', { class: 'muted' }, 'by hand'));

async function listPage() {
  const { models } = await api('GET', '/api/models');
  const body = models.length ? el('div', { class: 'scroll' }, el('table', { id: 'models' },
    el('tr', {}, ['Model', 'Version', 'Aliases', 'Key metrics', 'Run', 'Created'].map((h) => el('th', {}, h))),
    models.flatMap((m) => m.versions.filter((v) => !v.archived).reverse().map((v, k) => el('tr', { 'data-model': m.name, 'data-version': v.version },
      el('td', {}, k === 0 ? el('a', { href: '#/models/' + encodeURIComponent(m.name) }, m.name) : ''),
      el('td', {}, String(v.version)),
      el('td', { class: 'aliases' }, v.aliases.join(', ')),
      el('td', { class: 'wrap' }, metricText(v.metrics)),
      el('td', {}, runLink(v)),
      el('td', {}, when(new Date(v.created_ms).toISOString())))))))
    : el('p', { class: 'muted' }, 'No registered models yet: a step with register: {name: ...} registers its model output.');
  main().replaceChildren(el('h1', {}, 'Models'), body);
}

async function modelPage(name) {
  const m = await api('GET', '/api/models/' + encodeURIComponent(name));
  const inUse = m.versions.filter((v) => !v.archived);
  const byAlias = new Map(m.aliases.map((a) => [a.alias, a]));
  const shown = (byAlias.has('production') && m.versions.find((v) => v.version === byAlias.get('production').version)) || inUse[inUse.length - 1] || m.versions[m.versions.length - 1];
  const versions = el('div', { class: 'scroll' }, el('table', { id: 'versions' },
    el('tr', {}, ['Version', 'Aliases', 'Metrics', 'Run', 'Created', ''].map((h) => el('th', {}, h))),
    [...m.versions].reverse().map((v) => el('tr', { 'data-version': v.version },
      el('td', {}, String(v.version), v.archived ? el('span', { class: 'muted' }, ' (archived)') : ''),
      el('td', { class: 'aliases' }, v.aliases.join(', ')),
      el('td', { class: 'wrap' }, metricText(v.metrics)),
      el('td', {}, runLink(v)),
      el('td', {}, when(new Date(v.created_ms).toISOString())),
      el('td', {}, el('a', { href: `#/lineage?model=${encodeURIComponent(name)}&version=${v.version}` }, 'Lineage'))))));
  const aliases = m.aliases.length ? el('table', { id: 'aliases' },
    el('tr', {}, ['Alias', 'Version', 'Set by', 'When'].map((h) => el('th', {}, h))),
    m.aliases.map((a) => el('tr', { 'data-alias': a.alias }, el('td', {}, a.alias), el('td', {}, String(a.version)),
      el('td', {}, a.updated_by || '–'), el('td', {}, when(new Date(a.updated_ms).toISOString())))))
    : el('p', { class: 'muted' }, 'No aliases.');
  const gallery = el('div', { class: 'pictures', id: 'pictures' });
  main().replaceChildren(
    el('h1', {}, el('a', { href: '#/models' }, 'Models'), ' / ', m.name),
    el('h2', {}, 'Versions'), versions,
    el('h2', {}, 'Aliases'), aliases, aliasForm(m, inUse),
    el('h2', {}, `Evaluation of version ${shown.version}`), gallery);
  // What the steps downstream of the version wrote: its evaluation's pictures.
  const down = await api('GET', `/api/lineage?model=${encodeURIComponent(name)}&version=${shown.version}&direction=downstream`);
  const made = new Set(down.edges.filter((e) => e.role !== 'consumed').map((e) => e.artifact));
  const figures = await pictures(down.artifacts.filter((a) => made.has(a.hash)));
  gallery.replaceChildren(...(figures.length ? figures : [el('p', { class: 'muted' }, 'No pictures downstream of this version.')]));
}

// "Set alias": an alias name and a version in use; POSTs, then draws the
// page again from the server's answer.
function aliasForm(m, inUse) {
  const err = el('p', { class: 'error', id: 'alias-error' });
  const alias = el('input', { id: 'alias-name', name: 'alias', type: 'text', value: 'production', required: true,
                              pattern: '[a-z0-9][a-z0-9\\-]*', maxlength: 64 });
  const version = el('select', { id: 'alias-version', name: 'version' },
    [...inUse].reverse().map((v) => el('option', { value: v.version }, `version ${v.version}`)));
  const readOnly = session.scope === 'read';
  const form = el('form', { class: 'params alias-form', id: 'alias-form' },
    el('label', { for: 'alias-name' }, 'Alias'), alias,
    el('label', { for: 'alias-version' }, 'Points at'), version,
    el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit', id: 'alias-set', disabled: readOnly }, 'Set alias')),
    readOnly ? el('p', { class: 'muted' }, 'Setting an alias needs a token of scope run.') : null, err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    try {
      await api('POST', `/api/models/${encodeURIComponent(m.name)}/aliases`, { alias: alias.value.trim(), version: Number(version.value) });
      await modelPage(m.name);
    } catch (x) { err.textContent = x.message; }
  });
  return form;
}
