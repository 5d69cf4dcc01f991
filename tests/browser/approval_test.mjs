// A step waiting for approval, approved from the run page in Debian's
// Chromium: a real `sluice serve` starts the run, the page shows the step's
// message (as text: it holds markup) and an input per declared value; a bad
// value is refused and the step keeps waiting (the server's own refusal is in
// tests/integration/approval_test.cc); Approve with a good one lets
// the run finish, and the downstream step reads the value. A read-scope
// session sees the buttons disabled. Screenshots in light, dark and at a
// phone's width.
//
// usage: node approval_test.mjs SLUICE_BINARY [SCREENSHOT_DIR]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createToken, launchChromium, startServe, stopChild } from './serve.mjs';

const sluice = process.argv[2] && path.resolve(process.argv[2]);
if (!sluice) {
  console.error('usage: node approval_test.mjs SLUICE_BINARY [SCREENSHOT_DIR]');
  process.exit(2);
}
const shotDir = process.argv[3];

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-approval-'));
const dir = path.join(root, 'pipelines');
fs.mkdirSync(dir);
fs.writeFileSync(path.join(dir, 'release.yaml'), `name: release
steps:
  gate:
    uses: sluice/approval
    with:
      message: "Deploy <script>window.__pwned = 1</script> to prod?"
      values:
        replicas: {type: int, default: 2, min: 1, max: 8}
  deploy:
    needs: [gate]
    run: ["sh", "-c", "echo $0 $1 > deployed.txt", "\${{ steps.gate.outputs.replicas }}", "\${{ steps.gate.outputs.approver }}"]
`);
const env = { ...process.env, SLUICE_HOME: path.join(root, 'home') };
const runner = createToken(sluice, env), reader = createToken(sluice, env, 'read', 'viewer');

const { server, url } = await startServe(sluice, dir, env);
const api = async (method, p, token, body) => {
  const res = await fetch(url + p.slice(1), { method, headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
                                              body: body && JSON.stringify(body) });
  return res.json();
};

let failed = false;
let browser;
const step = async (what, fn) => { await fn(); console.log('ok - ' + what); };
try {
  const run = await api('POST', '/api/pipelines/release/runs', runner, {});
  browser = await launchChromium();
  const signIn = async (token) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
    await page.goto(url);
    await page.fill('#token', token);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('.pipeline[data-pipeline=release]');
    await page.evaluate((h) => { location.hash = h; }, '#/r/' + run.id);
    return { page, problems };
  };

  await step('a read-scope session sees the waiting step with its buttons disabled', async () => {
    const { page, problems } = await signIn(reader);
    await page.waitForSelector('.approval[data-step=gate]', { timeout: 30000 });
    if (!(await page.isDisabled('.approval .approve-button')) || !(await page.isDisabled('.approval .reject-button')))
      throw new Error('a read token can press Approve or Reject');
    if (problems.length) throw new Error(problems.join('\n'));
    await page.context().close();
  });

  const { page, problems } = await signIn(runner);
  await step('the run page shows the message as text and an input for the declared value', async () => {
    await page.waitForSelector('.approval[data-step=gate]', { timeout: 30000 });
    const message = await page.textContent('.approval .approval-message');
    if (message !== 'Deploy <script>window.__pwned = 1</script> to prod?') throw new Error('message shown as ' + message);
    if (await page.evaluate(() => window.__pwned)) throw new Error('the message ran as script');
    if ((await page.inputValue('#value-gate-replicas')) !== '2') throw new Error('the default is not filled in');
  });

  if (shotDir) {
    fs.mkdirSync(shotDir, { recursive: true });
    await page.screenshot({ path: path.join(shotDir, 'approval.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(shotDir, 'approval-dark.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(shotDir, 'approval-phone.png'), fullPage: true });
    const wide = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    if (wide) throw new Error('the run page scrolls sideways on a phone');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: 'light' });
  }

  await step('a value out of range is refused naming it and the step keeps waiting', async () => {
    await page.fill('#value-gate-replicas', '9');
    await page.click('.approval .approve-button');
    await page.waitForFunction(() => /at most 8/.test(document.querySelector('.approval .approval-error').textContent));
    const shown = await api('GET', '/api/runs/' + run.id, reader);
    if (shown.approvals[0].decision !== null) throw new Error('decided on a bad value');
  });

  await step('Approve with a good value finishes the run and the next step reads it', async () => {
    await page.fill('#value-gate-replicas', '3');
    await page.fill('#comment-gate', 'ship it');
    await page.click('.approval .approve-button');
    await page.waitForSelector('#run-state .badge.succeeded', { timeout: 30000 });
    if (await page.$('.approval')) throw new Error('the approval card is still shown');
    const deployed = fs.readFileSync(path.join(dir, 'deployed.txt'), 'utf8');
    if (deployed !== '3 token:browser\n') throw new Error('deploy read ' + deployed);
    const shown = await api('GET', '/api/runs/' + run.id, reader);
    const a = shown.approvals[0];
    if (a.decision !== 'approve' || a.decided_by !== 'token:browser' || a.comment !== 'ship it' || a.decided_values.replicas !== 3)
      throw new Error('recorded ' + JSON.stringify(a));
  });
  if (problems.length) throw new Error(problems.join('\n'));
  console.log('ok - a step waiting for approval is approved from the run page');
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e.stack || e));
} finally {
  if (browser) await browser.close();
  if (server.exitCode === null && server.signalCode === null) {
    await stopChild(server);
  }
  fs.rmSync(root, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
