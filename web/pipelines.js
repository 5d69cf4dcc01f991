// The pipelines page (#/, the home page): every pipeline in the folder, an
// invalid one with its FILE:LINE:COL errors, its schedules and last runs.
import { api, listen } from './api.js';
import { badge, duration, el, main, showError, when } from './dom.js';

export const path = /^#\/$/;

export async function show() {
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
  listen(0, () => { if (location.hash === '' || location.hash === '#/') show().catch(showError); });
}
