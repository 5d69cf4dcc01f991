// Signing in with an API token, and the header's "who" with Sign out. Not a
// route: the router shows the form when there is no session, and so does any
// request refused with 401 (api.js onUnauthorized).
import { closeStreams, signIn, signOut, ApiError } from './api.js';
import { el, main } from './dom.js';

let signedIn = () => {};
// fn() runs each time the form has made a session (the router shows the page).
export function onSignedIn(fn) { signedIn = fn; }

// The sign-in form, with `message` (why) under it.
export function showLogin(message) {
  closeStreams();
  const input = el('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'slc_…' });
  const err = el('p', { class: 'error', id: 'login-error' }, message && message !== 'no session' ? message : '');
  const form = el('form', { class: 'card', id: 'login', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const data = await signIn(input.value.trim());
      setWho(data);
      signedIn();
    } catch (x) { err.textContent = x instanceof ApiError ? x.message : String(x); }
  } },
  el('h1', {}, 'Sign in'),
  el('p', { class: 'muted' }, 'Paste an API token. Make one with: sluice token create --scope run'),
  input, el('div', { class: 'actions' }, el('button', { class: 'primary', type: 'submit' }, 'Sign in')), err);
  main().replaceChildren(form);
  input.focus();
}

// Who is signed in (s: the session), or nobody (null).
export function setWho(s) {
  document.getElementById('who').replaceChildren(s ? el('span', {}, (s.name || 'token') + ' · ' + s.scope + ' ',
    el('button', { onclick: async () => { await signOut(); showLogin(''); setWho(null); } }, 'Sign out')) : '');
}
