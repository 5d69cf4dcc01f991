// What the browser tests share: playwright-core's Chromium, and a real
// `sluice serve`.
//
// launchChromium() starts Debian's Chromium headless with the project's
// flags; it throws naming the fix when playwright-core is not installed (the
// test's finally then stops its server: exiting here would leave it running).
// startServe starts `sluice serve --dir DIR --port 0` with `env` and resolves, once it
// prints its address, to { server, url } (url ends with '/'). The caller
// stops the server by its pid: stopChild(child) sends SIGTERM to a child
// process and resolves to its exit code (or the signal that ended it).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';

export function startServe(sluice, dir, env) {
  const server = spawn(sluice, ['serve', '--dir', dir, '--port', '0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/url=(http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) resolve({ server, url: m[1] });
    });
    server.on('exit', (code) => reject(new Error('sluice serve exited with ' + code)));
    setTimeout(() => reject(new Error('sluice serve did not start')), 10000);
  });
}

export async function launchChromium() {
  let chromium;
  try {
    chromium = (await import('playwright-core')).chromium;
  } catch {
    throw new Error('playwright-core is not installed: run npm ci in tests/browser (scripts/install-deps.sh does)');
  }
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run'],
  });
}

export function stopChild(child) {
  const exited = new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal)));
  child.kill('SIGTERM');
  return exited;
}

// A token of `scope` named `name`, made with the CLI (it is printed once).
export function createToken(sluice, env, scope = 'run', name = 'browser') {
  return execFileSync(sluice, ['token', 'create', '--scope', scope, '--name', name], { env, encoding: 'utf8' })
    .match(/slc_[0-9a-f]+/)[0];
}

// The JSON API as `token` sees it: api(method, path, body) resolves to the
// parsed answer; finished(id) to the run's state once it is final (polled
// every 100 ms, for at most 30 s).
export function apiClient(url, token) {
  const api = async (method, p, body) => {
    const res = await fetch(url + p.slice(1), { method, headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
                                                body: body && JSON.stringify(body) });
    return res.json();
  };
  const finished = async (id) => {
    for (let i = 0; i < 300; ++i) {
      const r = await api('GET', '/api/runs/' + id);
      if (['succeeded', 'failed', 'cancelled'].includes(r.state)) return r.state;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('run ' + id + ' did not finish');
  };
  return { api, finished };
}

// The end of a test: closes the browser (if it opened), stops the server
// (false, said as FAILED, unless it exits 0 on SIGTERM) and removes `root`.
export async function tearDown(browser, server, root) {
  if (browser) await browser.close();
  const code = await stopChild(server);
  if (code !== 0) console.error('FAILED: sluice serve exited with ' + code + ' after SIGTERM');
  fs.rmSync(root, { recursive: true, force: true });
  return code === 0;
}
