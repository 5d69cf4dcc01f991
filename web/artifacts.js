// Artifacts as the pages show them: a table of a run's (or a step's)
// artifacts with kind, size, hash, a download link and a preview, and the
// pictures among a set of artifacts. Safely (RELIABILITY 21): a file is
// downloaded from /api/artifacts/HASH, which serves it as an attachment
// under `Content-Security-Policy: sandbox`; a picture (SVG included) is only
// ever shown by <img src=...>, where it runs no script; small text, JSON
// and CSV are read as text and placed in a <pre> as text. Nothing from an
// artifact is parsed into the page's DOM.
import { api } from './api.js';
import { el } from './dom.js';

export const PREVIEW_MAX = 64 * 1024;  // bytes of text previewed at most
const PICTURE = /\.(svg|png|jpe?g)$/i;
const TEXT = /\.(txt|json|csv|tsv|log|md|ya?ml)$/i;

export function size(bytes) {
  if (bytes < 1024) return bytes + ' B';
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' kB';
  return (bytes / 1048576).toFixed(1) + ' MB';
}

// The URL of an artifact, or of a file inside a folder artifact.
export function artifactUrl(hash, file) {
  return '/api/artifacts/' + hash + (file ? '?path=' + encodeURIComponent(file) : '');
}

// A preview of a file into `box`: a picture as <img>, text up to
// PREVIEW_MAX as text in a <pre>, anything else a note. A file artifact has
// no name of its own: the server types pictures by their first bytes, so
// the answer's Content-Type decides.
export async function preview(box, url, bytes, name) {
  box.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  if (PICTURE.test(name || '')) { box.replaceChildren(picture(url, name)); return; }
  const res = await fetch(url, { credentials: 'same-origin' });
  const type = res.headers.get('Content-Type') || '';
  if (!res.ok) { box.replaceChildren(el('p', { class: 'error' }, 'cannot read it: HTTP ' + res.status)); return; }
  if (type.startsWith('image/')) { res.body?.cancel(); box.replaceChildren(picture(url, name)); return; }
  if (bytes > PREVIEW_MAX) { res.body?.cancel(); box.replaceChildren(el('p', { class: 'muted' }, `Too large to preview (${size(bytes)}); download it.`)); return; }
  const text = await res.text();
  if (text.includes('\u0000') || (!TEXT.test(name || '') && /[\u0001-\u0008\u000e-\u001f]/.test(text))) {
    box.replaceChildren(el('p', { class: 'muted' }, 'Not text; download it.'));
    return;
  }
  box.replaceChildren(el('pre', { class: 'artifact-text' }, text));
}

export function picture(url, name) {
  return el('img', { class: 'artifact-picture', src: url, alt: name || 'picture', loading: 'lazy' });
}

// A folder artifact's files: [{path, size}].
export async function folderFiles(hash) {
  const listing = await api('GET', artifactUrl(hash));
  return listing.files || [];
}

// One row per artifact (the first TABLE_MAX): step, output name, kind, size,
// hash, and links to download it, preview it and see its lineage. A folder's row lists its
// files when previewed, each with its own links.
export const TABLE_MAX = 500;  // rows drawn at most (a run of 10,000 steps may have as many artifacts)
export function artifactTable(runId, all) {
  if (!all.length) return el('p', { class: 'muted' }, 'No artifacts.');
  const artifacts = all.slice(0, TABLE_MAX);
  const rows = artifacts.map((a) => {
    const box = el('div', { class: 'artifact-preview' });
    const step = a.step + (a.item !== undefined ? `[${a.item}]` : '');
    const show = async () => {
      try {
        if (a.kind === 'dir') box.replaceChildren(folderList(a.hash, await folderFiles(a.hash)));
        else await preview(box, artifactUrl(a.hash), a.size, a.name);
      } catch (x) { box.replaceChildren(el('p', { class: 'error' }, x.message)); }
    };
    return [
      el('tr', { 'data-artifact': a.hash, 'data-name': a.name },
        el('td', {}, step), el('td', {}, a.name), el('td', {}, a.kind), el('td', {}, size(a.size)),
        el('td', { class: 'hash', title: a.hash }, a.hash.slice(0, 12)),
        el('td', {}, el('div', { class: 'links' },
          a.kind === 'dir' ? null : el('a', { href: artifactUrl(a.hash), download: a.name }, 'Download'),
          el('button', { type: 'button', class: 'link preview-button', onclick: show }, a.kind === 'dir' ? 'Files' : 'Preview'),
          el('a', { href: `#/lineage?artifact=${a.hash}` }, 'Lineage')))),
      el('tr', { class: 'preview-row' }, el('td', { colspan: 6 }, box)),
    ];
  });
  return el('div', { class: 'scroll' }, el('table', { class: 'artifacts', 'data-run': runId },
    el('tr', {}, ['Step', 'Output', 'Kind', 'Size', 'Hash', ''].map((h) => el('th', {}, h))), rows.flat()),
    all.length > artifacts.length ? el('p', { class: 'muted' }, `The first ${artifacts.length} of ${all.length} artifacts (GET /api/runs/${runId}/artifacts?step=STEP lists a step's).`) : null);
}

// A folder's files, each with a download link and a preview.
function folderList(hash, files) {
  if (!files.length) return el('p', { class: 'muted' }, 'An empty folder.');
  return el('ul', { class: 'files' }, files.map((f) => {
    const box = el('div', { class: 'artifact-preview' });
    const url = artifactUrl(hash, f.path);
    return el('li', { 'data-file': f.path }, f.path, ' ', el('span', { class: 'muted' }, size(f.size)), ' ',
      el('a', { href: url, download: f.path.split('/').pop() }, 'Download'), ' ',
      el('button', { type: 'button', class: 'link preview-button', onclick: () => preview(box, url, f.size, f.path).catch((x) => box.replaceChildren(el('p', { class: 'error' }, x.message))) }, 'Preview'),
      box);
  }));
}

// The pictures among `artifacts` ([{hash, kind}]): the files of folder
// artifacts named .svg, .png or .jpg, at most `max`, each as an <img>.
export async function pictures(artifacts, max = 6) {
  const found = [];
  for (const a of artifacts) {
    if (a.kind !== 'dir' || found.length >= max) continue;
    for (const f of await folderFiles(a.hash)) if (PICTURE.test(f.path) && found.length < max) found.push({ hash: a.hash, path: f.path });
  }
  return found.map((p) => el('figure', { class: 'picture' }, picture(artifactUrl(p.hash, p.path), p.path), el('figcaption', {}, p.path)));
}
