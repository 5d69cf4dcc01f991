// The runs page (#/runs): the last 100 runs of every pipeline, newest first.
import { api, listen } from './api.js';
import { badge, duration, el, main, showError, when } from './dom.js';

export const path = /^#\/runs$/;

export async function show() {
  const data = await api('GET', '/api/runs?limit=100');
  main().replaceChildren(el('h1', {}, 'Runs'), el('table', {},
    el('tr', {}, el('th', {}, 'Run'), el('th', {}, 'Pipeline'), el('th', {}, 'State'), el('th', {}, 'Trigger'), el('th', {}, 'Created'), el('th', {}, 'Duration')),
    data.runs.map((r) => el('tr', {}, el('td', {}, el('a', { href: '#/r/' + r.id }, '#' + r.id)), el('td', {}, r.pipeline), el('td', {}, badge(r.state)),
                        el('td', {}, r.trigger), el('td', {}, when(r.created)), el('td', {}, duration(r.duration_ms))))));
  listen(0, () => { if (location.hash === '#/runs') show().catch(showError); });
}
