// Same-origin only, in a real browser: a page of another origin cannot read the stream, a name
// that resolves to loopback but is not podtap's (DNS rebinding) gets a refusal, and podtap's own
// page works under its Content-Security-Policy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { launchBrowser, PodtapPage, startPodtap } from './podtap.page.mjs';

let browser;
let podtap;
before(async () => {
  // evil.example resolves to loopback inside this browser only: a rebinding attacker's name.
  browser = await launchBrowser(['--host-resolver-rules=MAP evil.example 127.0.0.1']);
  podtap = await startPodtap();
});
after(async () => { podtap?.stop(); await browser?.close(); });

/** A page on another loopback port that tries to open podtap's stream and says what happened. */
function foreignSite(streamUrl) {
  const html = `<!doctype html><title>foreign</title><script>
    window.outcome = new Promise((done) => {
      const ws = new WebSocket(${JSON.stringify(streamUrl)});
      ws.onmessage = (m) => done('read: ' + String(m.data).slice(0, 40));
      ws.onerror = () => done('refused');
      ws.onclose = () => done('refused');
    });</script>`;
  const server = createServer((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('a page of another origin cannot open the stream', async () => {
  const stream = podtap.url.replace('http://', 'ws://') + '/api/v1/stream';
  const site = await foreignSite(stream);
  try {
    const page = await browser.context.newPage();
    await page.goto(`http://127.0.0.1:${site.address().port}/`);
    assert.equal(await page.evaluate(() => window.outcome), 'refused');
    // The same page served as podtap's own origin reads it: the check is the origin, not the socket.
    const own = await browser.context.newPage();
    await own.goto(podtap.url + '/healthz');
    const first = await own.evaluate((url) => new Promise((done) => {
      const ws = new WebSocket(url);
      ws.onmessage = (m) => done(JSON.parse(m.data).type);
      ws.onerror = () => done('refused');
    }), stream);
    assert.equal(first, 'hello');
  } finally {
    site.close();
  }
});

test('a rebinding name for loopback gets a refusal, not the app', async () => {
  const port = new URL(podtap.url).port;
  const page = await browser.context.newPage();
  const resp = await page.goto(`http://evil.example:${port}/`);
  assert.equal(resp.status(), 403);
  assert.match(await page.textContent('body'), /DNS-rebinding/);
  const api = await page.evaluate(async (p) => (await fetch(`http://evil.example:${p}/api/v1/records`)).status, port);
  assert.equal(api, 403);
});

test("podtap's own page runs under its Content-Security-Policy", async () => {
  const ui = new PodtapPage(await browser.context.newPage());
  const resp = await ui.page.goto(podtap.url + '/');
  assert.match(resp.headers()['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(resp.headers()['x-content-type-options'], 'nosniff');
  await ui.until('live rows under the policy', async () => (await ui.rowCount()) > 0);
  assert.deepEqual(ui.errors, []);
});

test('the binary carries its app: with no --assets and no dist/ around, the page works', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const cwd = mkdtempSync(join(tmpdir(), 'podtap-embedded-'));
  const env = { ...process.env };
  delete env.PODTAP_ASSETS;
  const server = await startBare(cwd, env);
  try {
    const health = await (await fetch(server.url + '/healthz')).json();
    assert.equal(health.app, 'embedded');
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    await ui.until('live rows from the embedded app', async () => (await ui.rowCount()) > 0);
    assert.deepEqual(ui.errors, []);
  } finally {
    server.stop();
    rmSync(cwd, { recursive: true, force: true });
  }
});

/** `podtap serve` with no --assets, run from `cwd`. */
async function startBare(cwd, env) {
  const { spawn } = await import('node:child_process');
  const bin = process.env.PODTAP_BIN ?? new URL('../../target/debug/podtap', import.meta.url).pathname;
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0'], { cwd, env: { ...env, PODTAP_LOG: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`podtap did not start:\n${log}`)), 20_000);
    proc.stderr.on('data', (c) => {
      log += c;
      const m = log.match(/podtap serving (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(timer); resolve({ url: m[1], stop: () => proc.kill('SIGTERM') }); }
    });
  });
}
