// The web UI in Debian's Chromium, driven by playwright-core, against a real
// `sluice serve` on a free loopback port with a real store:
// sign in, see an invalid pipeline's errors, start a run from the form with a
// non-default param (after the page refused an out-of-range one), watch the
// DAG turn green live, open a step's log, check that markup in data stays
// text, cancel a second run, retry a failed one, sign out and be asked to sign
// in again when the session is gone; screenshots are kept. Along the way:
// every file of web/ is served by the binary as it is in the source, the UI's
// ES modules as JavaScript, and the page asks nothing of any other origin.
// Then the services: a service applied through the binary with a canary
// rollout, its events and 30 minutes of windows put in the store by
// seed_rollout (as a deploy step writes them) is listed, its page shows its
// versions, weights, charts and the rollout's events, and Abort asks the
// rollout, which `sluice services show` then reports pending.
//
// usage: node ui_test.mjs SLUICE_BINARY SCREENSHOT_DIR SEED_ROLLOUT
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createToken, launchChromium, startServe, tearDown } from './serve.mjs';
import { fileURLToPath } from 'node:url';

const [sluice, shotDir, seedRollout] = process.argv.slice(2);
if (!sluice || !shotDir || !seedRollout) {
  console.error('usage: node ui_test.mjs SLUICE_BINARY SCREENSHOT_DIR SEED_ROLLOUT');
  process.exit(2);
}
if (!fs.existsSync('/usr/bin/chromium')) {
  console.error("Debian's chromium is not installed (apt-get install chromium; scripts/install-deps.sh does)");
  process.exit(1);
}

const XSS = '<img src=x onerror=alert(1)>';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ui-'));
const dir = path.join(root, 'pipelines');
const home = path.join(root, 'home');
const marker = path.join(root, 'fixed');
fs.mkdirSync(dir);
fs.writeFileSync(path.join(dir, 'demo.yaml'), `name: demo
description: "${XSS} shows as text"
params:
  n: {type: int, default: 2, min: 1, max: 9, description: how many}
  mode: {type: string, default: fast, enum: [fast, slow]}
  verbose: {type: bool, default: false}
  note: {type: string, default: "${XSS}"}
steps:
  prepare: {run: ["sh", "-c", "echo preparing n=$0 note=$1", "\${{ params.n }}", "\${{ params.note }}"]}
  shard:
    needs: [prepare]
    foreach: [1, 2, 3]
    run: ["sh", "-c", "sleep 0.5; echo shard $0", "\${{ item }}"]
  train: {needs: [prepare], run: "sleep 1; echo trained"}
  report: {needs: [shard, train], run: "echo report"}
`);
fs.writeFileSync(path.join(dir, 'slow.yaml'), `name: slow
steps:
  wait: {run: "sleep 60"}
  after: {needs: [wait], run: "echo never"}
`);
fs.writeFileSync(path.join(dir, 'flaky.yaml'), `name: flaky
params:
  marker: {type: string, default: "${marker}"}
  note: {type: string, default: "${XSS}"}
steps:
  check: {run: ["sh", "-c", "test -f \\"$0\\" || { echo not fixed yet; exit 3; }", "\${{ params.marker }}"]}
  finish: {needs: [check], run: "echo finished; echo done=yes >> $SLUICE_OUTPUT"}
outputs:
  done: \${{ steps.finish.outputs.done }}
  note: \${{ params.note }}
`);
fs.writeFileSync(path.join(dir, 'broken.yaml'), 'name: broken\nsteps:\n  a: {run: "true", nedds: [b]}\n');

const env = { ...process.env, SLUICE_HOME: home };
// A service of two command versions (never started: no gateway), then a
// canary of green over blue at its second step, with windows.
fs.writeFileSync(path.join(root, 'service.yaml'), `service: fashion
versions:
  blue: {command: ["python3", "-m", "http.server"], replicas: 1}
  green: {command: ["python3", "-m", "http.server", "--bind", "127.0.0.1"], replicas: 1}
traffic: {blue: 100, green: 0}
`);
execFileSync(sluice, ['services', 'apply', '--no-gateway', path.join(root, 'service.yaml')], { env });
const rolloutId = execFileSync(seedRollout, [path.join(home, 'sluice.db'), 'fashion', 'blue', 'green', '30'], { env, encoding: 'utf8' }).trim();
const token = createToken(sluice, env);

const { server, url } = await startServe(sluice, dir, env);

let browser;
const problems = [];
let failed = false;
try {
  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  // A 401 is expected only while signed out on purpose: for a request that
  // was answered after the sign-out began and made before the sign-in that
  // ended it went through (a page refresh in flight when Sign out is pressed
  // is refused too). Each is judged at the end by its request's times, not by
  // Chromium's console message, which names no request and can come late.
  const signedOut = [];  // {from, to}: from the sign-out to the sign-in's answer
  const issuedAt = new WeakMap();
  const refused = [];
  page.on('request', (r) => issuedAt.set(r, Date.now()));
  page.on('response', (r) => {
    if (r.status() === 401) refused.push({ what: r.request().method() + ' ' + r.url(), issued: issuedAt.get(r.request()), at: Date.now() });
  });
  const signInAgain = async () => {
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/session') && r.request().method() === 'POST');
    await page.fill('#token', token);
    await page.click('#login button[type=submit]');
    await answer;
    signedOut[signedOut.length - 1].to = Date.now();
  };
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/Failed to load resource: the server responded with a status of 401/.test(m.text())) return;
    problems.push('console: ' + m.text());
  });
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(url)) foreign.push(r.url()); });
  const scripts = [];
  page.on('response', (r) => { if (r.request().resourceType() === 'script') scripts.push(r); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('dialog', (d) => { problems.push('a dialog opened: ' + d.message()); d.dismiss(); });
  const step = async (name, fn) => {
    const t0 = Date.now();
    await fn();
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  };

  await step('the UI asks for a token and signs in with it', async () => {
    await page.goto(url);
    await page.fill('#token', token);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('.pipeline[data-pipeline=demo]');
  });

  await step("every file of web/ is served as it is, the UI's modules as JavaScript", async () => {
    const web = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
    const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
    for (const name of fs.readdirSync(web).filter((n) => !n.startsWith('.') && !n.endsWith('~'))) {
      const res = await fetch(url + name);
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
      if (!(res.headers.get('content-type') || '').startsWith(types[path.extname(name)])) {
        throw new Error(`${name} served as ${res.headers.get('content-type')}`);
      }
      if (!body.equals(fs.readFileSync(path.join(web, name)))) throw new Error(`${name} is not the file in web/`);
    }
    if ((await page.$eval('script[src="app.js"]', (e) => e.type)) !== 'module') throw new Error('app.js is not a module');
    const loaded = scripts.map((r) => path.basename(new URL(r.url()).pathname)).sort();
    for (const name of ['api.js', 'app.js', 'charts.js', 'dag.js', 'dom.js', 'login.js', 'pipelines.js', 'service.js', 'services.js']) {
      if (!loaded.includes(name)) throw new Error(`${name} was not loaded; loaded: ${loaded}`);
    }
    for (const r of scripts) {
      if (r.status() !== 200 || !r.headers()['content-type'].startsWith('text/javascript')) {
        throw new Error(`${r.url()}: ${r.status()} ${r.headers()['content-type']}`);
      }
    }
  });

  await step('an invalid pipeline shows its FILE:LINE:COL error', async () => {
    const text = await page.textContent('.pipeline[data-pipeline=broken]');
    if (!/broken\.yaml:3:\d+: unknown key 'nedds'/.test(text)) throw new Error('no located error in: ' + text);
  });

  await step('the pipeline page draws the DAG before any run and builds the form from the params', async () => {
    await page.click('.pipeline[data-pipeline=demo] h2 a');
    await page.waitForSelector('#run-form');
    const nodes = await page.$$eval('.node', (ns) => ns.map((n) => n.getAttribute('data-step')));
    if (nodes.sort().join() !== 'prepare,report,shard,train') throw new Error('DAG nodes: ' + nodes);
    if ((await page.$eval('#param-mode', (e) => e.tagName)) !== 'SELECT') throw new Error('enum is not a select');
    if ((await page.$eval('#param-verbose', (e) => e.type)) !== 'checkbox') throw new Error('bool is not a checkbox');
    if ((await page.$eval('#param-n', (e) => e.max)) !== '9') throw new Error('int has no max');
  });

  await step('the page refuses an out-of-range param without starting a run', async () => {
    await page.fill('#param-n', '99');
    await page.click('#run-button');
    await page.waitForFunction(() => /at most 9/.test(document.getElementById('run-error').textContent));
    if (!page.url().includes('#/p/demo')) throw new Error('navigated away: ' + page.url());
  });

  let demoRun;
  await step('a run started from the form with a non-default param turns green live', async () => {
    await page.fill('#param-n', '4');
    await page.selectOption('#param-mode', 'slow');
    await page.click('#run-button');
    await page.waitForURL(/#\/r\/\d+$/);
    demoRun = page.url().match(/#\/r\/(\d+)$/)[1];
    await page.evaluate(() => { window.__sameDocument = true; });
    await page.waitForSelector('.node[data-state=running]', { timeout: 15000 });
    await page.waitForFunction(() => {
      const ns = [...document.querySelectorAll('.node')];
      return ns.length === 4 && ns.every((n) => n.getAttribute('data-state') === 'succeeded');
    }, null, { timeout: 30000 });
    if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error('the page reloaded');
    const params = await page.textContent('main');
    if (!params.includes('n=4') || !params.includes('mode=slow')) throw new Error('params not shown: ' + params);
    const foreach = await page.textContent('.node[data-step=shard]');
    if (!/foreach ×3/.test(foreach)) throw new Error('foreach group without its count: ' + foreach);
  });

  await step("a step's log opens from the DAG", async () => {
    await page.click('.node[data-step=prepare]');
    await page.waitForFunction(() => /preparing n=4/.test(document.getElementById('step-log').textContent));
  });

  await step('markup in descriptions, params and logs stays text', async () => {
    const log = await page.textContent('#step-log');
    if (!log.includes(XSS)) throw new Error('the log lost the text: ' + log);
    const imgs = await page.$$eval('img', (x) => x.length);
    if (imgs !== 0) throw new Error(imgs + ' <img> elements were created from data');
    await page.goto(url + '#/');
    await page.waitForSelector('.pipeline[data-pipeline=demo]');
    const desc = await page.textContent('.pipeline[data-pipeline=demo]');
    if (!desc.includes(XSS)) throw new Error('description not shown as text');
    if ((await page.$$eval('img', (x) => x.length)) !== 0) throw new Error('<img> created from a description');
  });

  await step('a running run is cancelled from its page', async () => {
    await page.goto(url + '#/p/slow');
    await page.click('#run-button');
    await page.waitForURL(/#\/r\/\d+$/);
    await page.waitForSelector('.node[data-step=wait][data-state=running]', { timeout: 15000 });
    await page.click('#cancel-button');
    await page.waitForSelector('#run-state .badge.cancelled', { timeout: 20000 });
  });

  await step('a failed run is retried from its failed step and succeeds', async () => {
    await page.goto(url + '#/p/flaky');
    await page.click('#run-button');
    await page.waitForURL(/#\/r\/\d+$/);
    await page.waitForSelector('#run-state .badge.failed', { timeout: 15000 });
    // The run's outputs: one absent, with why; one holding markup, as text.
    await page.waitForSelector('#run-outputs');
    const outputs = () => page.$$eval('#run-outputs dd', (dds) => dds.map((d) => d.textContent));
    let shown = await outputs();
    if (!/^none: .*step 'finish' has no output 'done' \(it skipped\)$/.test(shown[0]) || shown[1] !== XSS)
      throw new Error('outputs of the failed run: ' + JSON.stringify(shown));
    if ((await page.$$eval('img', (x) => x.length)) !== 0) throw new Error('<img> created from a run output');
    fs.writeFileSync(marker, 'yes');
    await page.click('#retry-button');
    await page.waitForSelector('#run-state .badge.succeeded', { timeout: 20000 });
    const states = await page.$$eval('.node', (ns) => ns.map((n) => n.getAttribute('data-state')));
    if (!states.every((s) => s === 'succeeded')) throw new Error('after retry: ' + states);
    // Drawn from the same answer as the state: the run's end and its outputs are one commit.
    shown = await outputs();
    if (shown[0] !== 'yes' || shown[1] !== XSS) throw new Error('outputs after the retry: ' + JSON.stringify(shown));
  });

  await step('signing out asks for a token; so does a page read after the session is gone', async () => {
    signedOut.push({ from: Date.now(), to: Infinity });
    await page.click('#who button');
    await page.waitForSelector('#login #token');
    if ((await page.textContent('#who')) !== '') throw new Error('still shown as signed in');
    await signInAgain();
    await page.waitForSelector('#run-state .badge.succeeded');  // back on the page it was on
    signedOut.push({ from: Date.now(), to: Infinity });
    await page.context().clearCookies();
    await page.evaluate(() => { location.hash = '#/runs'; });  // the same document, which still holds a CSRF token
    await page.waitForFunction(() => /needs a token/.test((document.getElementById('login-error') || {}).textContent));
    if (await page.$('#page-error')) throw new Error('a 401 was shown as a page error too');
    await signInAgain();
    await page.waitForSelector('main h1:text-is("Runs")');
    if (!/browser · run/.test(await page.textContent('#who'))) throw new Error('who: ' + (await page.textContent('#who')));
  });

  await step('the services page lists the service with its versions, weights and last minute', async () => {
    await page.click('nav a[href="#/services"]');
    await page.waitForSelector('.service[data-service=fashion]');
    const text = await page.textContent('.service[data-service=fashion]');
    for (const want of ['blue', 'green', '50%', 'run:7/deploy']) if (!text.includes(want)) throw new Error(`no ${want} in: ${text}`);
    const segs = await page.$$eval('.service[data-service=fashion] .weights .seg', (xs) => xs.map((x) => x.getAttribute('data-version') + ' ' + x.style.width));
    if (segs.join() !== 'blue 50%,green 50%') throw new Error('weights bar: ' + segs);
    const p99 = await page.textContent('.service[data-service=fashion] tr[data-version=green] td:last-child');
    if (p99 !== '50 ms') throw new Error('green p99: ' + p99);
  });

  await step("the service page shows versions, weights, charts and the rollout's events", async () => {
    await page.click('.service[data-service=fashion] h2 a');
    await page.waitForSelector('#rollout[data-rollout="' + rolloutId + '"]');
    const versions = await page.$$eval('#versions tr[data-version]', (rs) => rs.map((r) => r.getAttribute('data-version') + ' ' + r.querySelector('.weight').textContent));
    if (versions.join() !== 'blue 50%,green 50%') throw new Error('versions: ' + versions);
    if ((await page.$$('.weights .seg')).length !== 2) throw new Error('no weights bar');
    await page.waitForFunction(() => document.querySelectorAll('#charts svg.chart').length === 3 &&
      [...document.querySelectorAll('#charts svg.chart')].every((c) => c.querySelectorAll('path.line').length === 2));
    const d = await page.$eval('#charts svg.chart path.line[data-version=green]', (x) => x.getAttribute('d'));
    if ((d.match(/L/g) || []).length < 100) throw new Error('the green line has too few points: ' + d.slice(0, 80));
    const kinds = await page.$$eval('#rollout-events tr[data-kind]', (rs) => rs.map((r) => r.getAttribute('data-kind')));
    if (kinds.join() !== 'shift,analysis,shift,start') throw new Error('events newest first: ' + kinds);
    const analysis = await page.textContent('#rollout-events tr[data-kind=analysis]');
    if (!/error_rate=0\.0049/.test(analysis) || !/requests=412/.test(analysis)) throw new Error('analysis figures: ' + analysis);
    if ((await page.textContent('#candidate-weight')) !== '50%') throw new Error('candidate weight');
    if ((await page.$$('.steps li')).length !== 3) throw new Error('not three steps');
    if (!(await page.$('.steps li.current:nth-child(2)'))) throw new Error('step 2 is not the current one');
  });

  await step('Abort asks the rollout, the page says so and sluice services show reports it pending', async () => {
    if (!(await page.$('#promote-button')) || !(await page.$('#abort-button'))) throw new Error('no Promote / Abort');
    await page.click('#abort-button');
    await page.waitForFunction(() => /abort requested of rollout/.test(document.getElementById('rollout-answer').textContent));
    await page.waitForFunction(() => /abort by token:browser \(pending\)/.test((document.getElementById('rollout-request') || {}).textContent));
    const shown = execFileSync(sluice, ['services', 'show', 'fashion'], { env, encoding: 'utf8' });
    if (!/requested: abort by token:browser \(pending\)/.test(shown)) throw new Error('sluice services show says:\n' + shown);
    const answer = await page.textContent('#rollout-answer');  // the page polls: the answer stays after a redraw
    await page.waitForTimeout(2500);
    if ((await page.textContent('#rollout-answer')) !== answer) throw new Error('the answer was lost on a redraw');
  });

  await step('screenshots: the run and service pages at 1280x800, dark mode and a phone', async () => {
    fs.mkdirSync(shotDir, { recursive: true });
    await page.goto(url + '#/r/' + demoRun);
    await page.waitForSelector('.node[data-state=succeeded]');
    await page.click('.node[data-step=shard]');
    await page.screenshot({ path: path.join(shotDir, 'run-1280x800.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(shotDir, 'run-dark.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(url + '#/p/demo');
    await page.waitForSelector('#run-form');
    await page.screenshot({ path: path.join(shotDir, 'pipeline-phone.png'), fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the phone page is ${overflow}px wider than the screen`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(url + '#/services/fashion');
    await page.waitForSelector('#charts path.line');
    await page.screenshot({ path: path.join(shotDir, 'service-1280x800.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(shotDir, 'service-dark.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(url + '#/services');
    await page.waitForSelector('.service[data-service=fashion]');
    await page.screenshot({ path: path.join(shotDir, 'services-phone.png'), fullPage: true });
    await page.goto(url + '#/services/fashion');
    await page.waitForSelector('#charts path.line');
    await page.screenshot({ path: path.join(shotDir, 'service-phone.png'), fullPage: true });
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (wide > 0) throw new Error(`the phone service page is ${wide}px wider than the screen`);
    console.log('screenshots in ' + shotDir);
  });

  if (foreign.length) throw new Error('requests to other origins:\n' + foreign.join('\n'));
  for (const x of refused)
    if (!signedOut.some((w) => x.at >= w.from && x.issued <= w.to)) problems.push(`401 for ${x.what} (made while signed in)`);
  if (problems.length) throw new Error('console errors:\n' + problems.join('\n'));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e.stack || e));
} finally {
  if (!(await tearDown(browser, server, root))) failed = true;
}
process.exit(failed ? 1 : 0);
