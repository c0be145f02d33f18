// The Service Map folded and navigated in a real browser, on the lab's capture and its servers'
// logs: a workload's folded counts are the sum of its pods' ground truth, opening it shows the
// pods with their own, toggles take away exactly the probes and the DNS queries, search and
// focus find boxes (also inside a folded one), an edge lists its requests, and a capture without
// names says where its addresses are unresolved.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { launchBrowser, PodtapPage, startPodtap } from './podtap.page.mjs';

const lab = process.env.PODTAP_LAB_DIR && existsSync(process.env.PODTAP_LAB_DIR + '/capture.pcapng')
  ? process.env.PODTAP_LAB_DIR : new URL('../../backend/demo', import.meta.url).pathname;
const truth = JSON.parse(readFileSync(lab + '/ground-truth.json'));

let browser, replay, nameless;
before(async () => {
  // Both replays run while the tests go: one with the lab's names, one without any.
  [browser, replay, nameless] = await Promise.all([
    launchBrowser(),
    startPodtap(['--pcap', lab + '/capture.pcapng', '--cluster', lab + '/cluster.json']),
    startPodtap(['--pcap', lab + '/capture.pcapng']),
  ]);
});
after(async () => { replay?.stop(); nameless?.stop(); await browser?.close(); });

const podsOf = (prefix) => Object.keys(truth.pods).filter((p) => p.startsWith(prefix));
const sum = (xs, f) => xs.reduce((n, x) => n + f(x), 0);
const into = (edges, id) => sum(edges.filter((e) => e.target === id), (e) => e.requests);
/** Requests on edges that leave a caller (not the Service → pod leg): each request once. */
const firstLegs = (edges) => sum(edges.filter((e) => !e.source.startsWith('service:') && !e.topic), (e) => e.requests);

async function nodes(ui) {
  return ui.page.$$eval('[data-testid="map-node"]', (els) => els.map((e) => ({
    id: e.dataset.id, level: e.dataset.level, members: Number(e.dataset.members ?? 0), quality: e.dataset.quality ?? '',
  })));
}

/** The lab replayed (one server for the file), a fresh page at workload level once every request is on the map. */
async function openFolded() {
  const server = replay;
  const ui = new PodtapPage(await browser.context.newPage());
  await ui.open(server.url, '?level=workload');
  const web = podsOf('default/web-');
  const api = podsOf('shop/api-');
  const edges = await ui.until('the whole capture on the folded map', async () => {
    const edges = await ui.edges();
    const ok = into(edges, 'workload:default/Deployment/web') === sum(web, (p) => truth.pods[p].requests)
      && into(edges, 'workload:shop/Deployment/api') === sum(api, (p) => truth.pods[p].requests);
    return ok ? edges : null;
  });
  return { server, ui, edges, web, api, done: () => ui.page.close() };
}

test('a folded workload counts what its pods served, and opening it shows each pod with its own', async () => {
  const { ui, edges, web, done } = await openFolded();
  try {
    const boxes = await nodes(ui);
    const wl = boxes.find((n) => n.id === 'workload:default/Deployment/web');
    assert.equal(wl.level, 'workload');
    assert.equal(wl.members, web.length);
    assert.ok(!boxes.some((n) => n.level === 'pod' && n.id.startsWith('pod:default/web-')), 'no web pod while folded');
    assert.ok(boxes.some((n) => n.id === 'service:default/web' && n.level === 'service'));
    // Connections sum exactly too: each connection reaches one pod.
    const conns = sum(edges.filter((e) => e.target === 'workload:default/Deployment/web'), (e) => e.connections);
    assert.equal(conns, sum(web, (p) => truth.pods[p].connections));
    assert.equal(await ui.page.getByTestId('map').getAttribute('data-level'), 'workload');

    await ui.page.locator('[data-testid="map-node"][data-id="workload:default/Deployment/web"]').click();
    const opened = await ui.until('the web pods on the map', async () => {
      const e = await ui.edges();
      return web.every((p) => into(e, 'pod:' + p) === truth.pods[p].requests) ? e : null;
    });
    for (const p of web) {
      const c = sum(opened.filter((e) => e.target === 'pod:' + p), (e) => e.connections);
      assert.equal(c, truth.pods[p].connections, `connections into ${p}`);
    }
    assert.ok(!(await nodes(ui)).some((n) => n.id === 'workload:default/Deployment/web'));
    assert.match(ui.page.url(), /open=workload%3Adefault%2FDeployment%2Fweb/);
    // The link restores it.
    await ui.page.reload();
    await ui.until('the opened workload after a reload', async () => (await ui.mapNodeIds()).includes('pod:' + web[0]));
    assert.deepEqual(ui.errors, []);
  } finally {
    await done();
  }
});

test('hiding probes and DNS takes away exactly those requests', async () => {
  const { ui, edges, web, done } = await openFolded();
  try {
    const before = firstLegs(edges);
    await ui.page.getByTestId('map-show-probes').uncheck();
    const probes = sum(Object.values(truth.pods), (p) => p.probe_requests);
    const noProbes = await ui.until('the map without probes', async () => {
      const e = await ui.edges();
      return firstLegs(e) === before - probes ? e : null;
    });
    assert.equal(into(noProbes, 'workload:default/Deployment/web'),
      sum(web, (p) => truth.pods[p].requests - truth.pods[p].probe_requests));
    assert.ok(!(await ui.mapNodeIds()).includes('node:lab-node'), 'the node only sent probes');
    assert.match(ui.page.url(), /probes=hide/);
    await ui.page.getByTestId('map-show-probes').check();
    await ui.until('probes back', async () => firstLegs(await ui.edges()) === before);

    await ui.page.getByTestId('map-show-dns').uncheck();
    const noDns = await ui.until('the map without DNS', async () => {
      const e = await ui.edges();
      return firstLegs(e) === before - truth.dns.queries ? e : null;
    });
    assert.ok(!noDns.some((e) => e.target.includes('kube-dns') || e.target.includes('coredns')));
    assert.match(await ui.page.getByTestId('map-quality').textContent(), new RegExp(`left out: ${truth.dns.queries} DNS queries`));
    assert.match(ui.page.url(), /hide=dns/);
  } finally {
    await done();
  }
});

test('search and focus find a box, also one folded away, with its callers and callees', async () => {
  const { ui, done } = await openFolded();
  try {
    await ui.page.getByTestId('map-search').fill('api');
    await ui.page.getByTestId('map-search').press('Enter');
    const focus = ui.page.getByTestId('map-focus');
    await focus.waitFor();
    assert.equal(await focus.getAttribute('data-id'), 'service:shop/api');
    // Every call into shop/api comes from a web pod; the Service passes them all to its pods.
    assert.equal(Number(await focus.getAttribute('data-in')), truth.upstream.calls);
    assert.equal(Number(await focus.getAttribute('data-out')), truth.upstream.calls);
    assert.match(ui.page.url(), /focus=service%3Ashop%2Fapi/);
    await ui.page.keyboard.press('Escape');
    await ui.page.getByTestId('map').press('Escape');
    await ui.until('no focus', async () => (await focus.count()) === 0);

    // A pod folded inside its workload: the workload opens and the pod is focused.
    const pod = podsOf('shop/api-')[0];
    await ui.page.getByTestId('map-search').fill(pod.split('/')[1]);
    await ui.page.getByTestId('map-search').press('Enter');
    await ui.until('the pod focused', async () => (await focus.getAttribute('data-id').catch(() => null)) === 'pod:' + pod);
    assert.equal(Number(await focus.getAttribute('data-in')), truth.pods[pod].requests);
    assert.ok((await ui.mapNodeIds()).includes('pod:' + pod));

    // A click on a Service shows its balance.
    await ui.page.getByTestId('map').press('Escape');
    await ui.page.getByTestId('map').press('0');
    await ui.until('no focus again', async () => (await focus.count()) === 0);
    await ui.page.locator('[data-testid="map-node"][data-id="service:default/web"]').click();
    await ui.until('the balance of default/web', async () => (await ui.page.getByTestId('balance-service').inputValue()) === 'default/web');
    // Keys zoom in: boxes that leave the view lose their hooks; 0 fits them all again.
    const all = (await ui.mapNodeIds()).length;
    await ui.page.getByTestId('map').focus();
    for (let i = 0; i < 8; i++) await ui.page.keyboard.press('+');
    await ui.until('fewer hooks when zoomed in', async () => (await ui.mapNodeIds()).length < all);
    await ui.page.keyboard.press('0');
    await ui.until('every hook when fitted', async () => (await ui.mapNodeIds()).length === all);
    await ui.page.getByTestId('map-legend-toggle').click();
    assert.match(await ui.page.getByTestId('map-legend').textContent(), /probes only.*DNS only/s);
  } finally {
    await done();
  }
});

/** The camera once it has stopped moving (the same over two frames, three times running). */
async function cameraAtRest(ui) {
  let [last, still] = ['', 0];
  return ui.until('the camera at rest', async () => {
    await ui.frames();
    const now = await camera(ui);
    still = JSON.stringify(now) === last ? still + 1 : 0;
    last = JSON.stringify(now);
    return still >= 3 && now;
  });
}

/** The camera as the hooks' layer follows it: translate (x, y) and scale k. */
async function camera(ui) {
  const t = await ui.page.locator('[data-testid="map"] .map-hooks > g').first().getAttribute('transform');
  const [x, y, k] = (t.match(/-?[\d.]+(e-?\d+)?/g) ?? []).map(Number);
  return { x, y, k };
}

test('two fingers pinch the map: it zooms around their middle', async () => {
  const { ui, done } = await openFolded();
  try {
    const map = ui.page.getByTestId('map');
    await map.scrollIntoViewIfNeeded();
    await ui.page.getByTestId('map-fit').click();
    const box = await map.boundingBox();
    const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
    const before = await cameraAtRest(ui);
    // Real touch points through the browser's input pipeline: the page sees touch pointers.
    const cdp = await ui.page.context().newCDPSession(ui.page);
    await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 2 });
    const touch = (type, d) => cdp.send('Input.dispatchTouchEvent', {
      type, touchPoints: type === 'touchEnd' ? [] : [{ x: cx - d, y: cy, id: 1 }, { x: cx + d, y: cy, id: 2 }],
    });
    await touch('touchStart', 40);
    for (let d = 50; d <= 160; d += 10) await touch('touchMove', d);
    await touch('touchEnd', 0);
    const after = await cameraAtRest(ui);
    // Fingers 80 px apart, then 320: the map is four times as big, within the camera's limits.
    assert.ok(after.k > before.k * 2, `zoomed in: ${JSON.stringify({ before, after })}`);
    // The world point between the fingers stays between them.
    const frame = { x: box.x + 1, y: box.y + 1 }; // inside the frame's border
    const world = (c) => [(cx - frame.x - c.x) / c.k, (cy - frame.y - c.y) / c.k];
    const [w0, w1] = [world(before), world(after)];
    assert.ok(Math.abs(w0[0] - w1[0]) * after.k < 12 && Math.abs(w0[1] - w1[1]) * after.k < 12,
      `the middle stayed put: ${JSON.stringify({ w0, w1, before, after })}`);
    await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: false });
    assert.deepEqual(ui.errors, []);
  } finally {
    await done();
  }
});

test('an edge lists its requests, and hovering it shows its numbers', async () => {
  const { server, ui, done } = await openFolded();
  try {
    const edge = ui.page.locator('[data-testid="map-edge"][data-source="pod:default/curl-client"][data-target="service:default/web"]');
    const requests = Number(await edge.getAttribute('data-requests'));
    assert.equal(requests, truth.clients.client.requests);
    await edge.hover();
    const card = ui.page.getByTestId('map-card');
    await card.waitFor();
    assert.match(await card.textContent(), new RegExp(`requests${requests}`));
    await ui.page.getByTestId('map-sparkline').waitFor({ timeout: 10_000 });
    await edge.click();
    const term = 'edge:pod:default/curl-client>service:default/web';
    await ui.until('the edge in the filter', async () => (await ui.filter.inputValue()).includes(term));
    const api = await (await ui.page.request.get(`${server.url}/api/v1/records?limit=10000&filter=${encodeURIComponent(term)}`)).json();
    assert.equal(api.records.length, truth.clients.client.requests);
    await ui.until('its requests in the list', async () => (await ui.rowCount()) > 0);
  } finally {
    await done();
  }
});

test('without names the map says which addresses it could not resolve', async () => {
  const ui = new PodtapPage(await browser.context.newPage());
  try {
    await ui.open(nameless.url);
    const item = ui.page.locator('[data-testid="quality-item"][data-kind="unresolved"]');
    await item.waitFor({ timeout: 20_000 });
    assert.match(await item.textContent(), /^100\.0 % of requests to or from unresolved addresses$/);
    assert.match(await item.getAttribute('title'), /cluster state does not name/);
    const boxes = await nodes(ui);
    assert.ok(boxes.length > 0 && boxes.every((n) => n.level === 'unresolved' && n.quality.includes('unresolved')), JSON.stringify(boxes));
  } finally {
    await ui.page.close();
  }
});
