// Two runs of a pipeline compared: ticked in the runs list, then their params
// side by side with the difference marked, their final metrics, and their
// loss curves overlaid, one line per run. A link naming one run or six, or
// runs of two pipelines, says what is wrong. In Debian's Chromium against a
// real `sluice serve`; the runs are of the testkit plugin, which reports a
// loss of 1/epoch for each epoch. Screenshots at 1280x800, dark and on a
// phone.
//
// usage: node compare_test.mjs SLUICE_BINARY SCREENSHOT_DIR PLUGIN_DIR (the folder of libtestkit.so)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { apiClient, createToken, launchChromium, startServe, tearDown } from './serve.mjs';

const sluice = process.argv[2] && path.resolve(process.argv[2]);
if (!sluice) {
  console.error('usage: node compare_test.mjs SLUICE_BINARY SCREENSHOT_DIR PLUGIN_DIR');
  process.exit(2);
}
const shotDir = process.argv[3];
const pluginDir = process.argv[4] && path.resolve(process.argv[4]);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-compare-'));
const dir = path.join(root, 'pipelines');
fs.mkdirSync(dir);
fs.writeFileSync(path.join(dir, 'fit.yaml'), `name: fit
params:
  epochs: {type: int, default: 8}
  note: {type: string, default: same}
steps:
  fit: {uses: testkit/echo, isolation: inprocess, with: {epochs: "\${{ params.epochs }}"}}
`);
fs.writeFileSync(path.join(dir, 'other.yaml'), 'name: other\nsteps:\n  a: {run: "true"}\n');
const env = { ...process.env, SLUICE_HOME: path.join(root, 'home'), SLUICE_PLUGIN_PATH: pluginDir || '' };
const token = createToken(sluice, env);

const { server, url } = await startServe(sluice, dir, env);
const { api, finished } = apiClient(url, token);

let failed = false;
let browser;
const problems = [];
const step = async (what, fn) => { await fn(); console.log('ok - ' + what); };
try {
  const eight = await api('POST', '/api/pipelines/fit/runs', {});
  const five = await api('POST', '/api/pipelines/fit/runs', { params: { epochs: 5 } });
  const other = await api('POST', '/api/pipelines/other/runs', {});
  for (const r of [eight, five, other]) if ((await finished(r.id)) !== 'succeeded') throw new Error('run ' + r.id + ' did not succeed');

  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(r.status() + ' for ' + r.request().method() + ' ' + r.url()); });
  await page.goto(url + '#/runs');
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#runs tr[data-run]');

  await step('two runs ticked in the runs list open their comparison', async () => {
    if (!(await page.isDisabled('#compare'))) throw new Error('Compare is enabled with nothing ticked');
    await page.check(`#runs tr[data-run="${eight.id}"] input.pick`);
    if (!(await page.isDisabled('#compare'))) throw new Error('Compare is enabled with one run ticked');
    await page.check(`#runs tr[data-run="${five.id}"] input.pick`);
    await page.click('#compare');
    await page.waitForFunction((h) => location.hash === h, `#/compare?runs=${eight.id},${five.id}`);
    await page.waitForSelector('#compare-params');
  });

  await step('their params are side by side, the one that differs marked', async () => {
    const cells = await page.$$eval('#compare-params tr[data-key]', (rs) => rs.map((r) => [r.getAttribute('data-key'),
      [...r.querySelectorAll('td')].map((td) => td.textContent + (td.classList.contains('differs') ? '*' : ''))]));
    const want = JSON.stringify([['epochs', ['8', '5*']], ['note', ['same', 'same']]]);
    if (JSON.stringify(cells) !== want) throw new Error('params: ' + JSON.stringify(cells));
  });

  await step('their final metrics are in one table', async () => {
    const cells = await page.$$eval('#compare-metrics tr[data-key]', (rs) => rs.map((r) => [r.getAttribute('data-key'),
      [...r.querySelectorAll('td')].map((td) => td.textContent)]));
    if (JSON.stringify(cells) !== JSON.stringify([['fit · loss', ['0.125', '0.2']]])) throw new Error('metrics: ' + JSON.stringify(cells));
  });

  await step('their loss curves are overlaid, one line per run with a hover value per epoch', async () => {
    const lines = await page.$$eval('#compare-curves path.line', (ps) => ps.map((p) => p.getAttribute('data-line')));
    if (JSON.stringify(lines) !== JSON.stringify(['#' + eight.id, '#' + five.id])) throw new Error('lines: ' + lines);
    const hovers = await page.$$eval('#compare-curves circle.point title', (ts) => ts.map((t) => t.textContent));
    if (hovers.length !== 13 || hovers[12] !== `#${five.id} · epoch 5: 0.2`) throw new Error('hovers: ' + hovers.join(' | '));
    if (shotDir) await page.screenshot({ path: path.join(shotDir, 'compare-1280x800.png'), fullPage: true });
  });

  await step('a link naming one run, six runs, or runs of two pipelines says what is wrong', async () => {
    await page.evaluate((h) => { location.hash = h; }, `#/compare?runs=${eight.id}`);
    await page.waitForSelector('#compare-error');
    if ((await page.textContent('#compare-error')) !== 'Pick 2 to 5 runs to compare; this link names 1.')
      throw new Error(await page.textContent('#compare-error'));
    await page.evaluate(() => { location.hash = '#/compare?runs=1,2,3,4,5,6'; });
    await page.waitForFunction(() => document.querySelector('#compare-error')?.textContent.endsWith('names 6.'));
    await page.evaluate((h) => { location.hash = h; }, `#/compare?runs=${eight.id},${other.id}`);
    await page.waitForFunction(() => document.querySelector('#compare-error')?.textContent.startsWith('Runs of one pipeline'));
  });

  await step('the comparison fits a 390 px phone and has a dark look', async () => {
    await page.evaluate((h) => { location.hash = h; }, `#/compare?runs=${eight.id},${five.id}`);
    await page.waitForSelector('#compare-curves');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the phone comparison is ${overflow}px wider than the screen`);
    if (shotDir) await page.screenshot({ path: path.join(shotDir, 'compare-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(200);
    if (shotDir) await page.screenshot({ path: path.join(shotDir, 'compare-dark.png'), fullPage: true });
  });
  if (problems.length) throw new Error('console errors:\n' + problems.join('\n'));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e.stack || e));
} finally {
  if (!(await tearDown(browser, server, root))) failed = true;
}
process.exit(failed ? 1 : 0);
