// The run page of a run of 10,000 steps in progress, in Debian's Chromium:
// a real `sluice run` drives it (100 layers of 100 steps, each sleeping
// 50 ms) on the store a real `sluice serve` reads; the page is opened once
// a few thousand attempts exist, and the time until its DAG shows the
// run's states is printed. The bound asserted is generous (four times the
// 2 s target), so that a noisy machine does not fail it; the figure is
// what to watch.
//
// usage: node big_run_test.mjs SLUICE_BINARY
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createToken, launchChromium, startServe, stopChild } from './serve.mjs';

const sluice = process.argv[2] && path.resolve(process.argv[2]);  // the driver starts in another folder
if (!sluice) {
  console.error('usage: node big_run_test.mjs SLUICE_BINARY');
  process.exit(2);
}

const TARGET_MS = 2000, BOUND_MS = 4 * TARGET_MS;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-big-'));
const dir = path.join(root, 'pipelines');
const home = path.join(root, 'home');
fs.mkdirSync(dir);
let spec = 'name: big\nsteps:\n';
for (let k = 0; k < 10000; k++) {
  const layer = Math.floor(k / 100), i = k % 100;
  const needs = layer > 0 ? `needs: [s${(layer - 1) * 100 + i}, s${(layer - 1) * 100 + (i + 1) % 100}], ` : '';
  spec += `  s${k}: {${needs}run: [sleep, "0.05"]}\n`;
}
fs.writeFileSync(path.join(dir, 'big.yaml'), spec);
const env = { ...process.env, SLUICE_HOME: home };
const token = createToken(sluice, env, 'read');

const { server, url } = await startServe(sluice, dir, env);
const driver = spawn(sluice, ['run', path.join(dir, 'big.yaml'), '--jobs', '8'], { env, cwd: dir, stdio: 'ignore' });
const get = async (p) => (await fetch(url + p.slice(1), { headers: { Authorization: 'Bearer ' + token } })).json();

let failed = false;
let browser;
try {
  // Under way: the run is running and has a few thousand attempts.
  let id = 0;
  for (const deadline = Date.now() + 90000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
    const runs = (await get('/api/runs?pipeline=big&limit=1')).runs;
    if (!runs.length || runs[0].state !== 'running') continue;
    id = runs[0].id;
    const { attempts } = await get(`/api/runs/${id}/attempts`);
    if (attempts.length >= 2000) break;
  }
  if (!id) throw new Error('the run did not start');

  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(url);
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('.pipeline[data-pipeline=big]');

  const t0 = Date.now();
  await page.evaluate((h) => { location.hash = h; }, '#/r/' + id);
  await page.waitForSelector('#run-state .badge.running', { timeout: 60000 });
  await page.waitForSelector('.node[data-state=running]', { timeout: 60000 });  // the page shows where the run is
  const opened = Date.now() - t0;
  console.log(`run page of a 10,000-step run in progress opened in ${opened} ms (target ${TARGET_MS} ms, bound ${BOUND_MS} ms)`);
  if (opened > BOUND_MS) throw new Error(`the run page took ${opened} ms, over ${BOUND_MS} ms`);

  // Live: a box in view changes state without a reload.
  const t1 = Date.now();
  const before = await page.$$eval('.node', (ns) => ns.map((n) => n.getAttribute('data-step') + ' ' + n.getAttribute('data-state')));
  await page.evaluate(() => { window.__sameDocument = true; });
  const changed = await page.waitForFunction((was) => {
    const now = new Map([...document.querySelectorAll('.node')].map((n) => [n.getAttribute('data-step'), n.getAttribute('data-state')]));
    return was.map((x) => x.split(' ')).find(([id, st]) => now.has(id) && now.get(id) !== st)?.[0];
  }, before, { timeout: 30000 });
  const step = await changed.jsonValue();
  if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error('the page reloaded');
  console.log(`a box in view (${step}) changed state after ${Date.now() - t1} ms`);
  const t2 = Date.now();
  await page.click(`.node[data-step=${step}]`);
  await page.waitForSelector(`#step-panel h2:has-text("${step}")`, { timeout: 10000 });
  console.log(`its panel opened in ${Date.now() - t2} ms`);
  if (problems.length) throw new Error(problems.join('\n'));
  console.log('ok - the run page of a 10,000-step run in progress opens and follows it');
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e.stack || e));
} finally {
  if (browser) await browser.close();
  for (const child of [driver, server]) {  // stopped by their pids
    if (child.exitCode !== null || child.signalCode !== null) continue;
    await stopChild(child);
  }
  fs.rmSync(root, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
