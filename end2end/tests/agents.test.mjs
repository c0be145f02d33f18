// podtap hub in a real browser: the header says how many nodes' agents are connected and, opened,
// which node is missing since when — a node that never got an agent, and one whose agent was
// killed — while the records an agent sent are on the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, PodtapPage } from './podtap.page.mjs';

const BIN = process.env.PODTAP_BIN ?? new URL('../../target/debug/podtap', import.meta.url).pathname;
const ASSETS = process.env.PODTAP_ASSETS ?? new URL('../../dist', import.meta.url).pathname;
const DEMO = new URL('../../backend/demo/', import.meta.url).pathname;

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

/** Starts a process and resolves with its first match of `pattern` in stderr. */
function start(args, pattern) {
  const proc = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PODTAP_LOG: 'info' } });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start:\n${log}`)), 20_000);
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(pattern);
      if (m) { clearTimeout(timer); resolve({ proc, match: m, log: () => log }); }
    });
  });
}

let dir, browser, hub, agent;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'podtap-agents-'));
  // The demo's cluster with a second node that runs no agent.
  const list = JSON.parse(readFileSync(join(DEMO, 'cluster.json'), 'utf8'));
  list.items.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'lab-node-2' },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.49.3' }] } });
  writeFileSync(join(dir, 'cluster.json'), JSON.stringify(list));
  const ingest = await freePort();
  hub = await start(['hub', '--listen', '127.0.0.1:0', '--ingest', `127.0.0.1:${ingest}`, '--assets', ASSETS,
    '--cluster', join(dir, 'cluster.json')], /podtap serving (http:\/\/[0-9.:]+)/);
  agent = await start(['agent', '--hub', `http://127.0.0.1:${ingest}`, '--node', 'lab-node', '--realtime',
    '--pcap', join(DEMO, 'capture.pcapng')], /connected to the hub/);
  browser = await launchBrowser();
});
after(async () => {
  agent?.proc.kill('SIGKILL');
  hub?.proc.kill('SIGTERM');
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function rows(page) {
  return page.$$eval('[data-testid="agent-row"]', (els) => els.map((e) => ({
    node: e.dataset.node, connected: e.dataset.connected === 'true', text: e.textContent,
  })));
}

test('the header shows every node\'s agent, and which are missing since when', async () => {
  const page = await browser.context.newPage();
  const p = new PodtapPage(page);
  await p.open(hub.match[1]);
  const pill = page.getByTestId('agents');
  await page.waitForFunction(() => document.querySelector('[data-testid="agents"]')?.dataset.connected === '1');
  assert.equal(await pill.getAttribute('data-total'), '2');
  assert.match(await pill.locator('summary').textContent(), /agents 1\/2/);
  await pill.locator('summary').click();
  let r = await rows(page);
  assert.deepEqual(r.map((x) => [x.node, x.connected]), [['lab-node', true], ['lab-node-2', false]]);
  assert.match(r[1].text, /no agent has connected/);
  // What the agent sent is on the page.
  await page.waitForSelector('[data-testid="timeline-row"]', { timeout: 15_000 });

  // The agent dies: the node is shown as away, since a time.
  agent.proc.kill('SIGKILL');
  await page.waitForFunction(() => document.querySelector('[data-testid="agents"]')?.dataset.connected === '0',
    null, { timeout: 10_000 });
  r = await rows(page);
  assert.match(r.find((x) => x.node === 'lab-node').text, /away since \d\d:\d\d:\d\d/);
  assert.match(await pill.locator('summary').textContent(), /agents 0\/2/);
  // The map says so where it matters: the quality bar, and a badge on every pod of that node.
  await pill.locator('summary').click();
  const missing = page.locator('[data-testid="quality-item"][data-kind="agent-missing"]');
  await p.until('the map\'s quality bar', async () => /agents missing: 2 of 2/.test(await missing.textContent().catch(() => '')));
  const pods = await page.$$eval('[data-testid="map-node"][data-level="pod"]', (els) => els.map((e) => e.dataset.quality ?? ''));
  assert.ok(pods.length > 0 && pods.every((q) => q.includes('agent-missing')), JSON.stringify(pods));
  // A count on an edge into such a pod may be low, and says so.
  const label = await page.locator('[data-testid="map-edge"][data-target^="pod:"]').first().getAttribute('aria-label');
  assert.match(label, /: ≥ /);
  assert.deepEqual(p.errors, []);
});
