// The built-in demo in a real browser: the map and live rows appear, the filter narrows them and
// travels in the URL, and the numbers on the map equal what the lab's servers logged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startFakeApi } from './fake-api.mjs';
import { launchBrowser, PodtapPage, startPodtap } from './podtap.page.mjs';

const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;
mkdirSync(ARTIFACTS, { recursive: true });

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('the demo shows a live Service Map and request rows', async () => {
  const server = await startPodtap();
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    const ids = await ui.until('the demo map', async () => {
      const ids = await ui.mapNodeIds();
      return ids.includes('service:default/web') && ids.includes('pod:default/web-7d4b9c8f6-x2k9p') ? ids : null;
    });
    assert.ok(ids.includes('pod:default/curl-client'), ids.join(' '));
    await ui.until('request rows', async () => (await ui.rowCount()) > 0);
    // The list shows the rows in view, newest first: a newer request comes to the top.
    const [first] = await ui.rowIds();
    await ui.until('newer rows arriving live', async () => (await ui.rowIds())[0] > first);
    assert.match(await ui.page.getByTestId('status').textContent(), /live/);
    await ui.until('the map to have drawn edges with counts', async () => (await ui.edges()).some((e) => e.requests > 0));
    await ui.page.screenshot({ path: ARTIFACTS + 'demo.png', fullPage: true });
    assert.deepEqual(ui.errors, []);
  } finally {
    server.stop();
  }
});

test('the stream is read in its worker; a page whose worker cannot start reads it itself', async () => {
  const server = await startPodtap();
  try {
    // The worker holds the open socket, and the page is live through it.
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    await ui.until('the worker to hold the open stream', async () => (await ui.streamWorkerSocket()) === 1);
    await ui.until('live rows through the worker', async () => (await ui.rowCount()) > 0);
    assert.match(await ui.page.getByTestId('status').textContent(), /live/);
    await ui.page.close();
    // Its script missing (a proxy that drops it): the same page, live, with the socket its own.
    const bare = new PodtapPage(await browser.context.newPage());
    await bare.page.route(/podtap-stream-[0-9a-f]{16}\.js$/, (route) => route.fulfill({ status: 404, body: 'gone' }));
    const sockets = [];
    bare.page.on('websocket', (ws) => sockets.push(ws.url()));
    await bare.open(server.url);
    await bare.until('live rows without the worker', async () => (await bare.rowCount()) > 0);
    await bare.until('the map without the worker', async () => (await bare.edges()).some((e) => e.requests > 0));
    assert.match(await bare.page.getByTestId('status').textContent(), /live/);
    assert.equal(await bare.streamWorkerSocket(), null);
    assert.ok(sockets.some((u) => u.endsWith('/api/v1/stream')), sockets.join(' '));
    assert.deepEqual([...ui.errors, ...bare.errors], []);
    await bare.page.close();
  } finally {
    server.stop();
  }
});

test('a page that draws no frames (a tab opened in the background) still lists its requests', async () => {
  const server = await startPodtap();
  try {
    // What a hidden tab is to the app: it says it is hidden, and animation frames never come.
    const page = await browser.context.newPage();
    await page.addInitScript(() => {
      Object.defineProperty(document, 'visibilityState', { get: () => 'hidden' });
      Object.defineProperty(document, 'hidden', { get: () => true });
      window.requestAnimationFrame = () => 0;
    });
    const ui = new PodtapPage(page);
    await ui.open(server.url);
    // The snapshot's records wait for the map's first frame, which never comes: they are
    // taken after a short wait all the same.
    await ui.until('the snapshot in the list', async () => /^\d+ requests?/.test(await ui.page.getByTestId('list-count').textContent()));
    assert.match(await ui.page.getByTestId('status').textContent(), /live/);
    assert.deepEqual(ui.errors, []);
    await page.close();
  } finally {
    server.stop();
  }
});

test('the filter narrows rows and map, and a shared link restores it', async () => {
  const server = await startPodtap();
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    await ui.until('rows', async () => (await ui.rowCount()) > 5);
    await ui.filter.fill('probe:true');
    await ui.until('only probe rows', async () => {
      const rows = await ui.rowTexts();
      return rows.length > 0 && rows.every((t) => t.includes('/health') && t.includes('probe'));
    });
    await ui.until('a map of probes only', async () => {
      const edges = await ui.edges();
      // kubelet probes the web and api pods straight from the node.
      return edges.length > 0 && edges.every((e) => e.source === 'node:lab-node'
        && (e.target.startsWith('pod:default/web-') || e.target.startsWith('pod:shop/api-')));
    });
    assert.match(ui.page.url(), /filter=probe%3Atrue/);
    await ui.page.reload();
    await ui.until('the filter restored from the URL', async () => (await ui.filter.inputValue()) === 'probe:true');
    await ui.until('probe rows again', async () => {
      const rows = await ui.rowTexts();
      return rows.length > 0 && rows.every((t) => t.includes('probe'));
    });
    await ui.filter.fill('colour:red');
    await ui.until('an error for an unknown key', async () => /unknown filter key/.test(await ui.page.getByTestId('filter-error').textContent()));
  } finally {
    server.stop();
  }
});

/** The fresh lab run when there is one, else the shipped demo: its truth, and podtap replaying it. */
async function replayLab() {
  const lab = process.env.PODTAP_LAB_DIR && existsSync(process.env.PODTAP_LAB_DIR + '/capture.pcapng')
    ? process.env.PODTAP_LAB_DIR : new URL('../../backend/demo', import.meta.url).pathname;
  const truth = JSON.parse(readFileSync(lab + '/ground-truth.json'));
  const server = await startPodtap(['--pcap', lab + '/capture.pcapng', '--cluster', lab + '/cluster.json']);
  return { truth, server };
}

test("the map's counts equal the lab servers' logs", async () => {
  const { truth, server } = await replayLab();
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    const expectedInto = (pod) => truth.pods[pod].requests;
    const edges = await ui.until('all records on the map', async () => {
      const edges = await ui.edges();
      const into = (id) => edges.filter((e) => e.target === id).reduce((n, e) => n + e.requests, 0);
      const ok = Object.keys(truth.pods).every((p) => into('pod:' + p) === expectedInto(p));
      return ok ? edges : null;
    });
    const edge = (s, t) => edges.find((e) => e.source === s && e.target === t);
    assert.equal(edge('pod:default/curl-client', 'service:default/web').requests, truth.clients.client.requests);
    assert.equal(edge('external:192.168.49.100', 'service:default/web').requests, truth.clients.ext.requests);
    for (const [pod, t] of Object.entries(truth.pods)) {
      const conns = edges.filter((e) => e.target === 'pod:' + pod).reduce((n, e) => n + e.connections, 0);
      assert.equal(conns, t.connections, `connections into ${pod}`);
    }
  } finally {
    server.stop();
  }
});

test('replica balance shows each pod of a Service against the logs, and the cause of the skew', async () => {
  const { truth, server } = await replayLab();
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    // A shared link picks the Service: web's pods call shop/api over one keep-alive connection each.
    await ui.open(server.url, '?service=shop/api');
    const apiPods = Object.keys(truth.pods).filter((p) => p.startsWith('shop/'));
    const { rows, cause } = await ui.until('balance rows for shop/api that match the logs', async () => {
      const b = await ui.balance();
      const ok = b.rows.length === apiPods.length
        && b.rows.every((r) => truth.pods[r.pod] && r.requests + r.probes === truth.pods[r.pod].requests);
      return ok ? b : null;
    });
    assert.deepEqual(rows.map((r) => r.pod).sort(), apiPods.sort());
    for (const r of rows) assert.equal(r.probes, truth.pods[r.pod].probe_requests, `probes of ${r.pod}`);
    const calls = rows.reduce((n, r) => n + r.requests, 0);
    assert.equal(calls, truth.upstream.calls);
    // The sentence is the server's: a skew names its cause (here, usually one web pod's
    // keep-alive connection), an even spread says so.
    const api = await (await ui.page.request.get(server.url + '/api/v1/services/shop/api/balance')).json();
    assert.equal(cause, api.cause ?? 'Requests are spread evenly.');
    if (api.skew >= 0.2) assert.match(cause, /^(1 keep-alive connection from |api-)/);
    // Picking another Service in the page changes the rows and the link.
    await ui.page.getByTestId('balance-service').selectOption('default/web');
    await ui.until('the web pods', async () => (await ui.balance()).rows.every((r) => r.pod.startsWith('default/web-')));
    assert.match(ui.page.url(), /service=default%2Fweb/);
    await ui.page.screenshot({ path: new URL('../artifacts/balance.png', import.meta.url).pathname, fullPage: true });
    assert.deepEqual(ui.errors, []);
  } finally {
    server.stop();
  }
});

test('under partial RBAC the page names what it could not list and what that costs', async () => {
  const lab = new URL('../../backend/demo', import.meta.url).pathname;
  const kubeconfig = join(tmpdir(), `podtap-e2e-kubeconfig-${process.pid}`);
  const api = await startFakeApi(lab + '/cluster.json', ['jobs'], kubeconfig);
  const server = await startPodtap(['--pcap', lab + '/capture.pcapng', '--loop'], { KUBECONFIG: kubeconfig });
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    const pill = ui.page.getByTestId('cluster-missing');
    await ui.until('the missing-kinds pill', async () => (await pill.count()) > 0);
    assert.equal(await pill.textContent(), 'names incomplete: jobs');
    assert.match(await pill.getAttribute('title'), /^jobs: forbidden \(403\) — no workload names for Jobs/);
    // Everything else is named: the web pods are on the map by name.
    await ui.until('named pods on the map', async () => (await ui.mapNodeIds()).includes('pod:default/web-7d4b9c8f6-x2k9p'));
  } finally {
    server.stop();
    api.stop();
    rmSync(kubeconfig, { force: true });
  }
});

test('while the API server does not answer the page says it waits, then names everything', async () => {
  const lab = new URL('../../backend/demo', import.meta.url).pathname;
  const kubeconfig = join(tmpdir(), `podtap-e2e-kubeconfig-late-${process.pid}`);
  const port = await freePort();
  // The kubeconfig points where the API server will be; nothing answers there yet.
  const never = await startFakeApi(lab + '/cluster.json', [], kubeconfig, port);
  never.stop();
  const server = await startPodtap(['--pcap', lab + '/capture.pcapng', '--loop'], { KUBECONFIG: kubeconfig });
  let api;
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    const waiting = ui.page.getByTestId('cluster-waiting');
    await ui.until('the waiting pill', async () => (await waiting.count()) > 0);
    assert.match(await waiting.getAttribute('title'), /pods: failing: /);
    assert.equal(await ui.page.getByTestId('map-node').count(), 0, 'nothing replayed before the names');
    api = await startFakeApi(lab + '/cluster.json', [], kubeconfig, port);
    await ui.until('named pods on the map', async () => (await ui.mapNodeIds()).includes('pod:default/web-7d4b9c8f6-x2k9p'));
    await ui.until('no waiting pill', async () => (await waiting.count()) === 0);
    assert.equal(await ui.page.getByTestId('cluster-missing').count(), 0);
    assert.deepEqual(ui.errors, []);
  } finally {
    server.stop();
    api?.stop();
    rmSync(kubeconfig, { force: true });
  }
});
