// The JSON API (specs/api.yaml) as the pages use it: requests with the
// session cookie and its CSRF token, the session itself, and the event
// streams (a page's /api/events and a followed log). Nothing here draws.

// The signed-in session: its CSRF token ('' when signed out) and scope.
export const session = { csrf: '', scope: '' };

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
    this.handled = status === 401;  // the unauthorized handler has shown the sign-in form
  }
}

let unauthorized = () => {};
// fn(message) is called when a request is refused for want of a session.
export function onUnauthorized(fn) { unauthorized = fn; }

// The answer's JSON (or text); an ApiError for any status but 2xx.
export async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = session.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const type = res.headers.get('Content-Type') || '';
  const data = type.startsWith('application/json') ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401) { unauthorized(data.error ? data.error.message : ''); }
    throw new ApiError(res.status, data.error ? data.error.message : String(data));
  }
  return data;
}

// The current session ({name, scope, csrf}), kept in `session`; null when
// there is none.
export async function readSession() {
  const s = await fetch('/api/session', { credentials: 'same-origin' });
  const data = await s.json();
  if (!s.ok || !data.scope) return null;
  session.csrf = data.csrf; session.scope = data.scope;
  return data;
}

// Signs in with an API token; the new session, or an ApiError saying why not.
export async function signIn(token) {
  const s = await fetch('/api/session', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                          body: JSON.stringify({ token }) });
  const data = await s.json();
  if (!s.ok) throw new ApiError(s.status, data.error.message);
  session.csrf = data.csrf; session.scope = data.scope;
  return data;
}

export async function signOut() {
  await api('DELETE', '/api/session');
  session.csrf = '';
}

// --- streams -------------------------------------------------------------------
const streams = { events: null, eventsKey: '', onChange: null, onStep: null, log: null, refreshTimer: 0, pollTimer: 0, pollGeneration: 0 };
// The page's reads after events: one at a time; `took` ms the last one.
const refresh = { running: false, again: false, took: 0 };

// Closes the page's event stream and log stream; the router calls it on
// every navigation.
export function closeStreams() {
  if (streams.events) { streams.events.close(); streams.events = null; }
  closeLogStream();
  clearTimeout(streams.refreshTimer);
  streams.refreshTimer = 0;
  refresh.again = false;
  refresh.took = 0;
  stopPolling();
}

function stopPolling() {
  clearTimeout(streams.pollTimer);
  streams.pollGeneration += 1;
}

// Calls fn() (async) every `ms` after the previous call ended, until the
// next navigation (closeStreams) or the next poll(): one poller per page,
// for what has no event stream (services and rollouts). An error of fn is
// fn's to show; the polling goes on.
export function poll(fn, ms) {
  stopPolling();
  const generation = streams.pollGeneration;
  const tick = async () => {
    if (generation !== streams.pollGeneration) return;
    try { await fn(); } catch { /* fn shows its own errors */ }
    if (generation === streams.pollGeneration) streams.pollTimer = setTimeout(tick, ms);
  };
  streams.pollTimer = setTimeout(tick, ms);
}

// One event stream per page: a page that draws itself again keeps its
// stream (and only swaps the callbacks); navigation closes it (closeStreams).
// onChange() (async) runs after run and step events of `run` (0: all runs)
// and after each (re)connection, to read again what may have changed: one
// call at a time, 60 ms after the event or, if later, twice as long after
// the previous call as that one took (a big run's page reads megabytes, and
// its events never pause). onStep(data), if given, runs at once for each
// step event ({run, step, item, state, attempts}).
export function listen(run, onChange, onStep) {
  const key = location.hash + '|' + run;
  streams.onChange = onChange;
  streams.onStep = onStep || null;
  if (streams.events && streams.eventsKey === key) return;
  if (streams.events) streams.events.close();
  const es = new EventSource('/api/events' + (run ? '?run=' + run : ''));
  es.addEventListener('hello', kick);  // subscribed: read again what may have changed before
  es.addEventListener('run', kick);
  es.addEventListener('step', (e) => {
    if (streams.onStep) streams.onStep(JSON.parse(e.data));
    kick();
  });
  es.onerror = () => {};  // EventSource reconnects by itself (and gets a new hello)
  streams.events = es;
  streams.eventsKey = key;
}

function kick() {
  if (refresh.running) { refresh.again = true; return; }
  if (streams.refreshTimer) return;
  streams.refreshTimer = setTimeout(async () => {
    streams.refreshTimer = 0;
    refresh.running = true;
    const t0 = performance.now();
    try { await streams.onChange(); } catch { /* onChange shows its own errors */ }
    refresh.took = performance.now() - t0;
    refresh.running = false;
    if (refresh.again) { refresh.again = false; kick(); }
  }, Math.max(60, 2 * refresh.took));
}

// A log's text so far ('' if it cannot be read).
export function fetchText(path) {
  return fetch(path, { credentials: 'same-origin' }).then((r) => (r.ok ? r.text() : ''));
}

export function closeLogStream() {
  if (streams.log) { streams.log.close(); streams.log = null; }
}

// Follows a log from byte `offset`: onLog({text, offset}) for each piece,
// onEnd() once the attempt has ended. One log stream at a time: it is
// closed by the next one, closeLogStream() or closeStreams().
export function followLog(path, offset, onLog, onEnd) {
  closeLogStream();
  const es = new EventSource(path + '&follow=1&offset=' + offset);
  es.addEventListener('log', (e) => onLog(JSON.parse(e.data)));
  es.addEventListener('end', () => { es.close(); onEnd(); });
  es.onerror = () => es.close();
  streams.log = es;
}
