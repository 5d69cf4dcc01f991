// What the browser tests share: playwright-core's Chromium, and a real
// `sluice serve`.
//
// startServe starts `sluice serve --dir DIR --port 0` with `env` and resolves, once it
// prints its address, to { server, url } (url ends with '/'). The caller
// stops the server by its pid (server.kill()).
import { spawn } from 'node:child_process';

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

// playwright-core's chromium; exits 1 naming the fix when it is not installed.
export async function loadChromium() {
  try {
    return (await import('playwright-core')).chromium;
  } catch {
    console.error('playwright-core is not installed: run npm ci in tests/browser (scripts/install-deps.sh does)');
    process.exit(1);
  }
}
