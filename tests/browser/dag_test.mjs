// The DAG fits its panel, zooms, pans and finds a step; a step's metric
// over 8 epochs is a chart; the runs list filters by pipeline, state,
// trigger and age, and its headers do not break inside a word. In Debian's Chromium against a real `sluice serve`; the
// pipeline has the shape of the shipped Fashion-MNIST demo (8 steps in 7
// layers, examples/fashion-mnist/pipeline.yaml) with steps that only exit,
// so that the test needs no training. Screenshots at 1280x800, dark and on a
// phone.
//
// usage: node dag_test.mjs SLUICE_BINARY SCREENSHOT_DIR PLUGIN_DIR (the folder of libtestkit.so)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { apiClient, createToken, launchChromium, startServe, tearDown } from './serve.mjs';

const sluice = process.argv[2] && path.resolve(process.argv[2]);
if (!sluice) {
  console.error('usage: node dag_test.mjs SLUICE_BINARY SCREENSHOT_DIR PLUGIN_DIR');
  process.exit(2);
}
const shotDir = process.argv[3];
const pluginDir = process.argv[4] && path.resolve(process.argv[4]);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-dag-'));
const dir = path.join(root, 'pipelines');
fs.mkdirSync(dir);
fs.writeFileSync(path.join(dir, 'fashion.yaml'), `name: fashion
steps:
  ingest-train: {run: "true"}
  ingest-test: {run: "true"}
  validate: {needs: [ingest-train], run: "true"}
  split: {needs: [ingest-train, validate], run: "true"}
  train: {needs: [split], run: "true"}
  evaluate: {needs: [train, ingest-test], run: "true"}
  export: {needs: [train, evaluate, ingest-test], run: "true"}
  report: {needs: [evaluate, export], run: "true"}
`);
fs.writeFileSync(path.join(dir, 'fit.yaml'), 'name: fit\nsteps:\n  fit: {uses: testkit/echo, isolation: inprocess, with: {epochs: 8}}\n');
fs.writeFileSync(path.join(dir, 'broken.yaml'), 'name: broken\nsteps:\n  fail: {run: "exit 3"}\n');
const env = { ...process.env, SLUICE_HOME: path.join(root, 'home'), SLUICE_PLUGIN_PATH: pluginDir || '' };
const token = createToken(sluice, env);

const { server, url } = await startServe(sluice, dir, env);
const { api, finished } = apiClient(url, token);

let failed = false;
let browser;
const problems = [];
const step = async (what, fn) => { await fn(); console.log('ok - ' + what); };
try {
  const fit = await api('POST', '/api/pipelines/fit/runs', {});
  if ((await finished(fit.id)) !== 'succeeded') throw new Error('the fit run did not succeed');
  const good = await api('POST', '/api/pipelines/fashion/runs', {});
  const bad = await api('POST', '/api/pipelines/broken/runs', {});
  if ((await finished(good.id)) !== 'succeeded' || (await finished(bad.id)) !== 'failed') throw new Error('the runs did not end as expected');
  execFileSync(sluice, ['run', path.join(dir, 'fashion.yaml')], { env, stdio: 'ignore' });  // a run triggered from the CLI

  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(r.status() + ' for ' + r.request().method() + ' ' + r.url()); });
  await page.goto(url);
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('.pipeline[data-pipeline=fashion]');

  // Every box of the DAG lies inside the panel's visible area, on screen.
  const allInside = () => page.evaluate(() => {
    const panel = document.querySelector('.dag').getBoundingClientRect();
    const out = [];
    for (const n of document.querySelectorAll('.node')) {
      const r = n.querySelector('rect.box').getBoundingClientRect();
      if (r.left < panel.left - 1 || r.right > panel.right + 1 || r.top < panel.top - 1 || r.bottom > panel.bottom + 1 ||
          r.bottom > window.innerHeight)
        out.push(n.getAttribute('data-step'));
    }
    return { nodes: document.querySelectorAll('.node').length, outside: out };
  });

  await step('the run page of the demo-shaped run shows all 8 steps inside the panel at 1280x800', async () => {
    await page.evaluate((h) => { location.hash = h; }, '#/r/' + good.id);
    await page.waitForSelector('.node[data-step=report][data-state=succeeded]');
    await page.waitForTimeout(300);  // the panel's size settles (ResizeObserver), then the layout for it
    const { nodes, outside } = await allInside();
    if (nodes !== 8) throw new Error('boxes drawn: ' + nodes);
    if (outside.length) throw new Error('cut off: ' + outside.join(', ') + ' (layout ' +
      (await page.getAttribute('.dag svg', 'data-layout')) + ', scale ' + (await page.getAttribute('.dag svg', 'data-scale')) + ')');
    if (shotDir) {
      fs.mkdirSync(shotDir, { recursive: true });
      await page.screenshot({ path: path.join(shotDir, 'dag-1280x800.png') });
    }
  });

  await step('+ zooms in, Fit brings every box back into the panel, and dragging pans', async () => {
    const before = Number(await page.getAttribute('.dag svg', 'data-scale'));
    await page.click('#dag-zoom-in');
    await page.click('#dag-zoom-in');
    const after = Number(await page.getAttribute('.dag svg', 'data-scale'));
    if (!(after > before)) throw new Error(`zoom in: ${before} -> ${after}`);
    const zoomText = await page.textContent('#dag-zoom');
    if (zoomText !== Math.round(after * 100) + '%') throw new Error('zoom label: ' + zoomText);
    const scrollable = await page.$eval('.dag', (d) => d.scrollHeight > d.clientHeight || d.scrollWidth > d.clientWidth);
    if (!scrollable) throw new Error('zoomed in, the DAG does not overflow its panel');
    // A point of the panel's background (not on a box, which keeps its clicks).
    const panel = await page.$eval('.dag', (d) => {
      const r = d.getBoundingClientRect();
      for (let y = r.top + 150; y < r.bottom - 20; y += 7)
        for (let x = r.left + 150; x < r.right - 20; x += 7) {
          const e = document.elementFromPoint(x, y);
          if (e && d.contains(e) && !e.closest('.node')) return { x: x - 100, y: y - 100 };
        }
      return null;
    });
    if (!panel) throw new Error('no background in the panel to drag');
    const start = await page.$eval('.dag', (d) => [d.scrollLeft, d.scrollTop]);
    await page.mouse.move(panel.x + 200, panel.y + 200);
    await page.mouse.down();
    await page.mouse.move(panel.x + 100, panel.y + 100, { steps: 5 });
    await page.mouse.up();
    const end = await page.$eval('.dag', (d) => [d.scrollLeft, d.scrollTop]);
    if (end[0] === start[0] && end[1] === start[1]) throw new Error('dragging did not pan: ' + start + ' -> ' + end);
    await page.click('#dag-fit');
    await page.waitForTimeout(100);
    const { outside } = await allInside();
    if (outside.length) throw new Error('after Fit, cut off: ' + outside.join(', '));
  });

  await step('finding a step by part of its name selects it and shows its panel', async () => {
    await page.fill('#dag-find', 'expo');
    await page.press('#dag-find', 'Enter');
    await page.waitForSelector('.node.selected[data-step=export]');
    await page.waitForFunction(() => /Step export/.test((document.querySelector('#step-panel h2') || {}).textContent));
    await page.fill('#dag-find', 'nothing-like-it');
    await page.press('#dag-find', 'Enter');
    if ((await page.textContent('#dag-found')) !== 'no step named like that') throw new Error('no answer for an unknown step');
  });

  await step("a step's loss over 8 epochs is a line chart with a hover value per epoch", async () => {
    await page.evaluate((h) => { location.hash = h; }, '#/r/' + fit.id);
    await page.click('.node[data-step=fit]');
    await page.waitForSelector('.metric-charts figure path.line');
    if ((await page.textContent('.metric-charts figcaption')) !== 'loss') throw new Error('chart: ' + (await page.textContent('.metric-charts figcaption')));
    const hovers = await page.$$eval('.metric-charts circle.point title', (ts) => ts.map((t) => t.textContent));
    if (hovers.length !== 8) throw new Error('points: ' + hovers.length);
    if (hovers[0] !== 'attempt 1 · epoch 1: 1' || hovers[7] !== 'attempt 1 · epoch 8: 0.125') throw new Error('hover values: ' + hovers.join(' | '));
    const ys = await page.$$eval('.metric-charts circle.point', (cs) => cs.map((c) => Number(c.getAttribute('cy'))));
    if (!ys.every((y, k) => k === 0 || y > ys[k - 1])) throw new Error('a falling loss is not drawn falling: ' + ys);
    if (shotDir) await page.screenshot({ path: path.join(shotDir, 'metrics-1280x800.png') });
  });

  const rows = () => page.$$eval('#runs tr[data-run]', (rs) => rs.map((r) => Number(r.getAttribute('data-run'))));
  await step('the runs list filters by state, pipeline and trigger, kept in the address', async () => {
    await page.evaluate(() => { location.hash = '#/runs'; });
    await page.waitForSelector('#runs tr[data-run]');
    if ((await rows()).length !== 4) throw new Error('all runs: ' + (await rows()));
    await page.selectOption('#filter-state', 'failed');
    await page.waitForFunction(() => location.hash === '#/runs?state=failed');
    await page.waitForFunction((id) => [...document.querySelectorAll('#runs tr[data-run]')].map((r) => r.getAttribute('data-run')).join() === String(id), bad.id);
    await page.selectOption('#filter-state', '');
    await page.selectOption('#filter-pipeline', 'fashion');
    await page.waitForFunction(() => location.hash === '#/runs?pipeline=fashion');
    await page.waitForFunction(() => document.querySelectorAll('#runs tr[data-run]').length === 2);
    await page.selectOption('#filter-trigger', 'cli');
    await page.waitForFunction(() => location.hash === '#/runs?pipeline=fashion&trigger=cli');
    await page.waitForFunction(() => document.querySelectorAll('#runs tr[data-run]').length === 1);
    await page.selectOption('#filter-trigger', 'webhook');
    await page.waitForSelector('#no-runs');
    if ((await page.textContent('#no-runs')) !== 'No run matches these filters.') throw new Error('empty list says: ' + (await page.textContent('#no-runs')));
    await page.reload();
    await page.waitForSelector('#no-runs');
    if ((await page.inputValue('#filter-trigger')) !== 'webhook') throw new Error('the filter was lost on a reload');
    await page.evaluate(() => { location.hash = '#/runs?age=1h'; });
    await page.waitForFunction(() => document.querySelectorAll('#runs tr[data-run]').length === 4);
  });

  // A header cell is one line: no header breaks inside a word.
  const headersOneLine = () => page.$$eval('th', (ths) => ths.filter((th) => {
    const lines = th.getBoundingClientRect().height / parseFloat(getComputedStyle(th).lineHeight || '20');
    return th.getBoundingClientRect().height > 40 || lines > 2.5;
  }).map((th) => th.textContent));
  await step('table headers stay whole at 1280 px, in a pipeline card and on a 390 px phone', async () => {
    let broken = await headersOneLine();
    if (broken.length) throw new Error('headers broken at 1280: ' + broken);
    await page.evaluate(() => { location.hash = '#/'; });
    await page.waitForSelector('.pipeline[data-pipeline=fashion] table');
    broken = await headersOneLine();
    if (broken.length) throw new Error('pipeline card headers broken: ' + broken);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.evaluate(() => { location.hash = '#/runs'; });
    await page.waitForSelector('#runs tr[data-run]');
    broken = await headersOneLine();
    if (broken.length) throw new Error('headers broken on a phone: ' + broken);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the phone runs page is ${overflow}px wider than the screen`);
    if (shotDir) await page.screenshot({ path: path.join(shotDir, 'runs-phone.png'), fullPage: true });
    await page.evaluate((h) => { location.hash = h; }, '#/r/' + good.id);
    await page.waitForSelector('.node[data-step=report]');
    await page.waitForTimeout(300);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (wide > 0) throw new Error(`the phone run page is ${wide}px wider than the screen`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(300);
    if (shotDir) await page.screenshot({ path: path.join(shotDir, 'dag-dark.png') });
  });
  if (problems.length) throw new Error('console errors:\n' + problems.join('\n'));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e.stack || e));
} finally {
  if (!(await tearDown(browser, server, root))) failed = true;
}
process.exit(failed ? 1 : 0);
