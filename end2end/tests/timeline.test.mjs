// The timeline in a real browser, on the lab's capture replayed on its own time axis: the
// swimlanes tell the seed story (one keep-alive lane to one pod, many one-request lanes spread
// over the replicas, probes straight to each pod), a click on a bar opens the request in full,
// click-to-filter narrows every view, the brush writes the window into the URL, and a link with a
// window and a selection reopens both in a fresh browser — with the map's counts equal to what
// the servers logged in that window.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { launchBrowser, PodtapPage, startPodtap } from './podtap.page.mjs';

const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The fresh lab run (with its server logs) when there is one, else the shipped demo. */
function lab() {
  const fresh = process.env.PODTAP_LAB_DIR;
  const dir = fresh && existsSync(fresh + '/capture.pcapng') ? fresh : new URL('../../backend/demo', import.meta.url).pathname;
  const truth = JSON.parse(readFileSync(dir + '/ground-truth.json'));
  return { dir, truth, logs: existsSync(dir + '/logs') ? dir + '/logs' : null };
}

async function replay(dir) {
  return startPodtap(['--pcap', dir + '/capture.pcapng', '--cluster', dir + '/cluster.json']);
}

/** What the web and api servers logged: {ts_us, pod, conn, probe}. */
function served(logs) {
  const rows = [];
  for (const f of readdirSync(logs)) {
    const ns = f.startsWith('web-') ? 'default' : f.startsWith('api-') ? 'shop' : null;
    if (!ns) continue;
    for (const line of readFileSync(logs + '/' + f, 'utf8').split('\n').filter((l) => l.trim())) {
      const r = JSON.parse(line);
      rows.push({ ts: Math.round(r.ts * 1e6), pod: `${ns}/${r.pod}`, conn: r.conn, probe: r.user_agent.startsWith('kube-probe/') });
    }
  }
  return rows.sort((a, b) => a.ts - b.ts);
}

/** A window with its edges in the two widest quiet gaps of the run's middle. */
function quietWindow(rows) {
  const mid = rows.slice(Math.floor(rows.length / 5), Math.floor(rows.length * 4 / 5));
  const gaps = mid.slice(1).map((r, i) => [r.ts - mid[i].ts, mid[i].ts]).sort((a, b) => b[0] - a[0]);
  const edges = gaps.slice(0, 2).map(([g, at]) => at + Math.floor(g / 2)).sort((a, b) => a - b);
  return { from: edges[0], to: edges[1] };
}

test('swimlanes tell the seed story at a glance', async () => {
  const { dir, truth } = lab();
  const server = await replay(dir);
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    await ui.until('lanes', async () => (await ui.page.locator('[data-testid="timeline-lane"]').count()) > 0);
    const clientRequests = truth.clients.client.requests;
    const lanes = await ui.until('every client request on a lane', async () => {
      const lanes = await ui.lanes();
      const toWeb = lanes.filter((l) => l.src === 'pod:default/curl-client' && l.dst.startsWith('pod:default/web-'));
      return toWeb.reduce((n, l) => n + l.requests, 0) === clientRequests ? lanes : null;
    });
    const toWeb = lanes.filter((l) => l.src === 'pod:default/curl-client' && l.dst.startsWith('pod:default/web-'));
    // One keep-alive client: one long lane with all its requests, to one pod.
    const keepalive = truth.clients.client.by_mode.keepalive;
    const longest = toWeb.reduce((a, b) => (b.requests > a.requests ? b : a));
    assert.equal(longest.requests, keepalive, JSON.stringify(longest));
    // A client that opens a connection per request: many one-request lanes, over both replicas.
    const single = toWeb.filter((l) => l.requests === 1);
    assert.ok(single.length >= truth.clients.client.by_mode['per-request'], `${single.length} one-request lanes`);
    assert.equal(new Set(single.map((l) => l.dst)).size, 2, 'spread over both replicas');
    // kubelet probes: one-request lanes from the node straight to each pod, dimmed.
    const probes = lanes.filter((l) => l.src === 'node:lab-node');
    assert.ok(probes.every((l) => l.probe), 'everything from the node to the pods is a probe');
    const probeTruth = Object.values(truth.pods).reduce((n, p) => n + p.probe_requests, 0);
    assert.equal(probes.length, probeTruth);
    assert.ok(probes.every((l) => l.requests === 1 && l.probe && l.dst.startsWith('pod:')), JSON.stringify(probes[0]));
    assert.equal(new Set(probes.map((l) => l.dst)).size, Object.keys(truth.pods).length, 'every pod is probed');
    // One toggle hides them.
    await ui.page.getByTestId('timeline-hide-probes').check();
    await ui.until('no probe lanes', async () => !(await ui.lanes()).some((l) => l.src === 'node:lab-node'));
    assert.match(ui.page.url(), /probes=hide/);
    // A pair's header folds its lanes away, and a second click brings them back.
    const header = ui.page.locator('[data-testid="timeline-group"]').first();
    const [gsrc, gdst] = [await header.getAttribute('data-src'), await header.getAttribute('data-dst')];
    const inGroup = async () => (await ui.lanes()).filter((l) => l.src === gsrc && l.dst === gdst).length;
    const before = await inGroup();
    assert.ok(before > 0, `${gsrc} → ${gdst} has lanes`);
    await ui.page.locator(`[data-testid="timeline-group"][data-src="${gsrc}"][data-dst="${gdst}"]`).click();
    await ui.until('the pair folded', async () => (await inGroup()) === 0);
    await ui.page.locator(`[data-testid="timeline-group"][data-src="${gsrc}"][data-dst="${gdst}"]`).click();
    await ui.until('the pair unfolded', async () => (await inGroup()) === before);
    await ui.page.screenshot({ path: ARTIFACTS + 'timeline.png', fullPage: true });
    // The header names the capture, not where it sits on the server.
    assert.equal(await ui.page.getByTestId('source').textContent(), 'capture.pcapng');
    assert.deepEqual(ui.errors, []);
  } finally {
    server.stop();
  }
});

test('a bar opens its request in full; its names filter every view', async () => {
  const { dir, truth } = lab();
  const server = await replay(dir);
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    const keepalive = truth.clients.client.by_mode.keepalive;
    const lane = await ui.until('the keep-alive lane', async () => (await ui.lanes()).find((l) => l.requests === keepalive && l.src === 'pod:default/curl-client'));
    const el = await ui.lane(lane.conn);
    const id = Number(await el.locator('[data-testid="timeline-bar"]').nth(5).getAttribute('data-id'));
    // Scrolling redraws the rows, so the bar is found by its id, and pressed only once it holds
    // still for a frame (the pick is by position, not by element).
    const bar = ui.page.locator(`[data-testid="timeline-bar"][data-id="${id}"]`);
    const box = await ui.until('the bar on screen, holding still', async () => {
      await bar.scrollIntoViewIfNeeded({ timeout: 1000 }).catch(() => {});
      const a = await bar.boundingBox({ timeout: 1000 }).catch(() => null);
      await ui.frames();
      const b = await bar.boundingBox({ timeout: 1000 }).catch(() => null);
      return a && b && a.x === b.x && a.y === b.y ? b : null;
    });
    // Pressed, then redrawn before the release, as a live stream redraws the lanes at every record:
    // the browser sends no `click` then, and the pick must still happen.
    await ui.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await ui.page.mouse.down();
    await ui.page.$$eval(`[data-testid="timeline-bar"][data-id="${id}"]`, (els) => els.forEach((e) => e.remove()));
    await ui.page.mouse.up();
    const d = await ui.until('the detail panel', async () => {
      const d = await ui.detail();
      return d && d.id === id && d.connRequests > 0 ? d : null;
    });
    const pod = lane.dst.replace('pod:', '');
    assert.ok(d.pod.includes(pod), `${d.pod} names ${pod}`);
    assert.match(d.service, /clusterIP 10\.96\.\d+\.\d+:80/);
    assert.match(d.service, /default\/web/);
    assert.match(d.path, /DNAT/);
    assert.equal(d.connRequests, keepalive, 'every request on its connection, one click away');
    assert.match(d.text, new RegExp(`Connection ${lane.conn}`));
    assert.match(await ui.page.getByTestId('detail-probe').textContent(), /^Not a probe/);
    assert.match(ui.page.url(), new RegExp(`sel=${id}`));
    // Click-to-filter: the pod's name narrows the list, the lanes and the map.
    await ui.page.getByTestId('detail-pod').locator('[data-testid="filter-term"]').click();
    const short = pod.split('/')[1];
    assert.equal(await ui.filter.inputValue(), `pod:${short}`);
    await ui.until('only that pod in the list', async () => {
      const rows = await ui.rowTexts();
      return rows.length > 0 && rows.every((t) => t.includes(short));
    });
    // The map keeps the pod and whoever it talked to; the other replica is gone.
    const other = Object.keys(truth.pods).find((p) => p.startsWith('default/web-') && p !== pod);
    await ui.until('only that pod on the map', async () => {
      const ids = await ui.mapNodeIds();
      return ids.includes(lane.dst) && !ids.includes('pod:' + other);
    });
    const lanes = await ui.lanes();
    assert.ok(lanes.length > 0 && lanes.every((l) => l.src.includes(short) || l.dst.includes(short)), JSON.stringify(lanes.slice(0, 3)));
    // A probe's bar says why it is one, and that it went straight to the pod.
    await ui.filter.fill('probe:true');
    const probe = await ui.until('a probe lane', async () => (await ui.lanes()).find((l) => l.probe && l.bars.length));
    // The open panel may cover the bar (it sits over the lanes' right end): close it first, and
    // wait until it is gone (a loaded machine takes a while to redraw).
    const close = ui.page.getByTestId('detail-close');
    if (await close.count()) {
      await close.click();
      await ui.until('the panel closed', async () => (await close.count()) === 0);
    }
    const probeBar = (await ui.lane(probe.conn)).locator('[data-testid="timeline-bar"]').first();
    await probeBar.click();
    await ui.until('the probe in full', async () => {
      const text = await ui.page.getByTestId('detail-probe').textContent({ timeout: 1000 }).catch(() => '');
      return /A kubelet probe: its User-Agent is kube-probe\//.test(text);
    });
    assert.match(await ui.page.getByTestId('detail-path').textContent(), /direct/);
    // An invalid filter keeps the last valid view and says why.
    await ui.filter.fill('probe:maybe');
    await ui.until('the error', async () => /still showing `probe:true`/.test(await ui.page.getByTestId('filter-error').textContent()));
    assert.ok((await ui.rowTexts()).every((t) => t.includes('probe')), 'the probe rows stay');
    // A filter that matches nothing says so.
    await ui.filter.fill('path:/no-such-path');
    await ui.until('an empty map that says why', async () => /No traffic matches `path:\/no-such-path`/.test(await ui.page.getByTestId('map-empty').textContent().catch(() => '')));
    // The list takes a snapshot's records a frame after its map is drawn.
    await ui.until('the list says so too', async () => /No request matches `path:\/no-such-path`/.test(await ui.page.getByTestId('list-count').textContent()));
    assert.deepEqual(ui.errors, []);
  } finally {
    server.stop();
  }
});

test('a narrow window still fits or scrolls, and an unknown Service is said to be unknown', async () => {
  const { dir } = lab();
  const server = await replay(dir);
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    for (const width of [1000, 600]) {
      await ui.page.setViewportSize({ width, height: 800 });
      await ui.open(server.url, '?service=default/nope');
      await ui.until('rows', async () => (await ui.rowCount()) > 0);
      const overflow = await ui.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a ${width} px window`);
      // The header against its own scroll box, read in one go: the page above it may still grow
      // (the balance, the map) while records arrive, which moves both together.
      const list = ui.page.locator('.list-scroll');
      const offset = () => list.evaluate((el) => el.querySelector('th').getBoundingClientRect().top - el.getBoundingClientRect().top);
      await ui.until('a list long enough to scroll', () => list.evaluate((el) => el.scrollHeight > el.clientHeight + 300));
      const head = await offset();
      await list.evaluate((el) => { el.scrollTop = 300; });
      await ui.frames();
      assert.ok((await list.evaluate((el) => el.scrollTop)) > 0, 'the list scrolled');
      const after = await offset();
      assert.ok(Math.abs(after - head) < 2, `the list keeps its header in view (${head} px, then ${after} px from its top)`);
    }
    await ui.until('the unknown Service named', async () => /Service default\/nope is unknown/.test(await ui.page.getByTestId('balance-unknown').textContent()));
    assert.deepEqual(ui.errors, []);
  } finally {
    server.stop();
  }
});

test('the brush chooses a window; a link reopens it and its selection, with the servers\' counts', async () => {
  const { dir, logs } = lab();
  const server = await replay(dir);
  try {
    const ui = new PodtapPage(await browser.context.newPage());
    await ui.open(server.url);
    const strip = ui.page.getByTestId('timeline-overview');
    await ui.until('the overview strip', async () => (await strip.locator('rect.req').count()) > 0);
    const box = await strip.boundingBox();
    await ui.page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
    await ui.page.mouse.down();
    await ui.page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 5 });
    await ui.page.mouse.up();
    await ui.until('from and to in the URL', async () => /from=\d+&to=\d+/.test(ui.page.url()));
    const url = new URL(ui.page.url());
    const [from, to] = [url.searchParams.get('from'), url.searchParams.get('to')];
    // The page's map for the window is the server's map for that window.
    const api = await (await ui.page.request.get(`${server.url}/api/v1/map?from=${from}&to=${to}`)).json();
    const want = api.edges.map((e) => `${e.source}>${e.target}=${e.requests}`).sort();
    await ui.until('the windowed map', async () => {
      const got = (await ui.edges()).map((e) => `${e.source}>${e.target}=${e.requests}`).sort();
      return JSON.stringify(got) === JSON.stringify(want);
    });
    const records = await (await ui.page.request.get(`${server.url}/api/v1/records?from=${from}&to=${to}&limit=10000`)).json();
    await ui.until('the list of that window', async () => (await ui.page.getByTestId('list-count').textContent()) === `${records.records.length} requests`);
    assert.ok(await ui.page.getByTestId('window').count(), 'the header shows the window');

    if (!logs) return; // the shipped demo has no server logs; `cargo xtask test` runs the lab
    // A quiet window of the run, and one of its requests selected, opened in a fresh browser.
    const rows = served(logs);
    const w = quietWindow(rows);
    const inside = rows.filter((r) => r.ts >= w.from && r.ts <= w.to);
    const page = await (await ui.page.request.get(`${server.url}/api/v1/records?from=${w.from}&to=${w.to}&filter=kind:http&limit=10`)).json();
    const sel = page.records[0].id;
    const fresh = await launchBrowser();
    try {
      const other = new PodtapPage(await fresh.context.newPage());
      await other.open(server.url, `?from=${w.from}&to=${w.to}&sel=${sel}`);
      await other.until('the selection', async () => (await other.detail())?.id === sel);
      const into = await other.until('the window\'s counts on the map', async () => {
        const edges = await other.edges();
        const into = {};
        for (const e of edges) if (e.target.startsWith('pod:')) into[e.target.slice(4)] = (into[e.target.slice(4)] ?? 0) + e.requests;
        const want = {};
        for (const r of inside) want[r.pod] = (want[r.pod] ?? 0) + 1;
        return Object.entries(want).every(([pod, n]) => into[pod] === n) ? into : null;
      });
      assert.ok(Object.keys(into).length > 0);
      assert.match(other.page.url(), new RegExp(`from=${w.from}&to=${w.to}`));
    } finally {
      await fresh.close();
    }
  } finally {
    server.stop();
  }
});
