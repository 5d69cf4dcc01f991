// The Sluice web UI: plain DOM and ES modules, no framework and no build
// step. Everything it shows comes from the JSON API (specs/api.yaml); text
// from the server is only ever placed as text (dom.js). This file is the
// router: it signs in, then shows the page whose path matches the hash.
//
// A page is one module: `export const path` (a RegExp on location.hash) and
// `export function show(match)` (async; it draws into #main and may listen()
// for events). Adding one is a file in web/ (CMake embeds every file there),
// its import and its entry in `pages` below, and a link in index.html's nav
// if it has one.
import { closeStreams, onUnauthorized, readSession, session } from './api.js';
import { showError } from './dom.js';
import { onSignedIn, setWho, showLogin } from './login.js';
import * as compare from './compare.js';
import * as lineage from './lineage.js';
import * as models from './models.js';
import * as pipeline from './pipeline.js';
import * as pipelines from './pipelines.js';
import * as run from './run.js';
import * as runs from './runs.js';
import * as service from './service.js';
import * as services from './services.js';

// The first page whose path matches is shown; any other hash shows the first.
const pages = [pipelines, pipeline, run, runs, compare, services, service, models, lineage];

async function route() {
  closeStreams();
  const h = location.hash || '#/';
  try {
    if (!session.csrf) {
      const s = await readSession();
      if (!s) { showLogin(''); return; }
      setWho(s);
    }
    let page = pages[0], match = null;
    for (const p of pages) {
      const m = h.match(p.path);
      if (m) { page = p; match = m; break; }
    }
    await page.show(match);
  } catch (x) { showError(x); }
}

onUnauthorized(showLogin);
onSignedIn(route);
window.addEventListener('hashchange', route);
route();
