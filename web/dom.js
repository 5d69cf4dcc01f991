// DOM helpers for every page. Text from the server is only ever placed with
// text nodes, textContent or setAttribute, never parsed as markup: el() and
// svg() turn every child that is not a Node into a text node.

export const main = () => document.getElementById('main');

// <tag attrs...>children</tag>. An attribute whose value is undefined, null
// or false is left out, true gives an empty one; onX attributes add
// listeners for event X.
export function el(tag, attrs, ...children) {
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
export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

export const badge = (s) => el('span', { class: 'badge ' + s }, s);

export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return ms + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  const m = Math.floor(s / 60);
  return m + ' min ' + Math.round(s - m * 60) + ' s';
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

// Shows an error above the page, except one already taken care of (a 401,
// which brought up the sign-in form: api.js marks it handled).
export function showError(x) {
  if (x && x.handled) return;
  const box = document.getElementById('page-error') || el('p', { class: 'error', id: 'page-error' });
  box.textContent = x.message || String(x);
  main().prepend(box);
}
