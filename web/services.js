// The services page (#/services): every service of the store with its
// versions, live weights and each version's last minute (requests/s,
// error rate, p99), read again every 2 s.
import { api, poll } from './api.js';
import { el, main, showError } from './dom.js';

export const path = /^#\/services$/;

export const rate = (x) => (x === null || x === undefined ? '–' : (x >= 10 ? x.toFixed(0) : x.toFixed(1)) + '/s');
export const percent = (x) => (x === null || x === undefined ? '–' : (x * 100).toFixed(x < 0.001 && x > 0 ? 3 : 2) + '%');
export const ms = (x) => (x === null || x === undefined ? '–' : x + ' ms');

// The live weights as one bar, a segment per version with weight.
export function weightsBar(versions) {
  const bar = el('div', { class: 'weights', role: 'img',
                          'aria-label': versions.map((v) => v.name + ' ' + v.weight + '%').join(', ') });
  versions.forEach((v, i) => {
    if (!v.weight_bp) return;
    const seg = el('span', { class: 'seg c' + (i % 6), 'data-version': v.name, title: `${v.name}: ${v.weight}%` },
      v.weight_bp >= 1500 ? `${v.name} ${v.weight}%` : '');
    seg.style.width = v.weight_bp / 100 + '%';  // CSSOM, which the page's CSP allows
    bar.append(seg);
  });
  return bar;
}

function card(s) {
  return el('div', { class: 'card service', 'data-service': s.name },
    el('h2', {}, el('a', { href: '#/services/' + encodeURIComponent(s.name) }, s.name),
      s.traffic_owner ? el('span', { class: 'muted' }, ' · weights driven by ' + s.traffic_owner) : null),
    weightsBar(s.versions),
    el('div', { class: 'scroll' }, el('table', {},
      el('tr', {}, ['Version', 'Weight', 'Replicas', 'Req/s', 'Errors', 'p99'].map((h) => el('th', {}, h))),
      s.versions.map((v) => el('tr', { 'data-version': v.name },
        el('td', {}, v.name), el('td', {}, v.weight + '%'),
        el('td', {}, `${v.replica_rows.filter((r) => r.state === 'ready').length}/${v.replicas}`),
        el('td', {}, rate(v.last_minute.requests_per_s)), el('td', {}, percent(v.last_minute.error_rate)),
        el('td', {}, ms(v.last_minute.p99_ms)))))));
}

export async function show() {
  const draw = async () => {
    const data = await api('GET', '/api/services');
    if (location.hash !== '#/services') return;
    main().replaceChildren(el('h1', {}, 'Services'),
      el('p', { class: 'muted' }, data.gateway ? `Gateway ${data.gateway.url} (pid ${data.gateway.pid})` : 'No gateway is running; figures are from what it last flushed.'),
      data.services.length ? el('div', { class: 'grid' }, data.services.map(card))
        : el('p', { class: 'muted' }, 'No services. Make one with: sluice services apply service.yaml'));
  };
  await draw();
  poll(() => draw().catch(showError), 2000);
}
