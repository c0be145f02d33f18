// Databases and brokers on the map, in a real browser, on the captures of the lab's real servers
// behind their Services (end2end/lab/kafka.sh, redis.sh, named by the tier's List; the Rust tests
// check the same captures against the servers' logs): a Kafka topic is a box between its
// producers and its consumers, its edges counted apart from the broker's (every request once on
// the map), the hover card of an edge into Redis lists its commands as the API counts them, and
// the Redis Service's balance shows the pool pinned to one replica, with its cause.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { launchBrowser, PodtapPage, startPodtap } from './podtap.page.mjs';

const db = process.env.PODTAP_DB_DIR;
// Run by `cargo xtask test` after the labs; by hand without them, said and skipped.
const skip = db && existsSync(db + '/kafka.pcapng') ? false : 'PODTAP_DB_DIR has no lab captures (run the labs first)';

let browser, kafka, redis;
before(async () => {
  if (skip) return;
  [browser, kafka, redis] = await Promise.all([
    launchBrowser(),
    startPodtap(['--pcap', db + '/kafka.pcapng', '--cluster', db + '/db-cluster.json']),
    startPodtap(['--pcap', db + '/redis.pcapng', '--cluster', db + '/db-cluster.json']),
  ]);
});
after(async () => { kafka?.stop(); redis?.stop(); await browser?.close(); });

const sum = (xs, f) => xs.reduce((n, x) => n + f(x), 0);
const api = async (ui, url) => (await ui.page.request.get(url)).json();

/** Once `server` has replayed its whole capture and holds every record of it (a condition, not a
 * pause: the API's numbers below are final). */
async function replayed(ui, server) {
  await ui.until('the whole capture replayed and stored', async () => {
    const m = server.log().match(/replay finished: (\d+) records/);
    return m && (await api(ui, `${server.url}/healthz`)).records === Number(m[1]);
  });
}

/** The page's map edges with their topic. */
const edges = (ui) => ui.page.$$eval('[data-testid="map-edge"]', (els) => els.map((e) => ({
  source: e.dataset.source, target: e.dataset.target, requests: Number(e.dataset.requests), topic: e.dataset.topic,
})));

test('a Kafka topic is a box between its producers and consumers, counted apart from the broker', { skip }, async () => {
  const ui = new PodtapPage(await browser.context.newPage());
  try {
    await ui.open(kafka.url, '?level=pod');
    await replayed(ui, kafka);
    const records = (await api(ui, `${kafka.url}/api/v1/records?limit=10000&filter=kind:kafka`)).records;
    const map = await api(ui, `${kafka.url}/api/v1/map`);
    const topicEdges = map.edges.filter((e) => e.topic);
    assert.ok(topicEdges.some((e) => e.target.startsWith('topic:')) && topicEdges.some((e) => e.source.startsWith('topic:')),
      'the replay has writers and readers of a topic');
    const shown = await ui.until('every topic edge drawn as the API counts it', async () => {
      const drawn = await edges(ui);
      return topicEdges.every((t) => drawn.some((d) => d.source === t.source && d.target === t.target
        && d.requests === t.requests && d.topic === t.topic)) ? drawn : null;
    });
    // The map's total counts each request once: on its edge to the broker, not again on a topic's
    // (a bootstrap request through the Service is on the edge into it and again on the edge out
    // of it, to the broker's pod; the rest go straight to the pod the broker advertises).
    const total = Number(await ui.page.getByTestId('map').getAttribute('data-requests'));
    assert.equal(total, records.length);
    const into = shown.filter((e) => !e.topic && !e.source.startsWith('service:'));
    assert.ok(shown.some((e) => e.source.startsWith('service:')) && into.some((e) => e.target.startsWith('pod:')), 'through the Service and straight to the pod');
    assert.equal(sum(into, (e) => e.requests), records.length);
    // The topic's box: its own level, never folded, and its focus names producers and consumers.
    const orders = topicEdges.find((e) => e.source.startsWith('topic:')).source;
    const box = ui.page.locator(`[data-testid="map-node"][data-id="${orders}"]`);
    assert.equal(await box.getAttribute('data-level'), 'topic');
    await box.click();
    const focus = ui.page.getByTestId('map-focus');
    await focus.waitFor();
    assert.equal(Number(await focus.getAttribute('data-in')), sum(topicEdges.filter((e) => e.target === orders), (e) => e.requests));
    assert.equal(Number(await focus.getAttribute('data-out')), sum(topicEdges.filter((e) => e.source === orders), (e) => e.requests));
    assert.match(await focus.textContent(), /producers: 1 · \d+ requests.*consumers: 1 · \d+ requests/s);
    // "Filter to this": the topic's requests, the ones that name it.
    await ui.page.getByTestId('map-focus-filter').click();
    const name = orders.split('/').pop();
    await ui.until('the topic in the filter', async () => (await ui.filter.inputValue()).includes(`topic:${name}`));
    const named = new Set(records.filter((r) => (r.topics ?? []).some((t) => t.name === name)).map((r) => r.id));
    const filtered = (await api(ui, `${kafka.url}/api/v1/records?limit=10000&filter=${encodeURIComponent(`topic:${name}`)}`)).records;
    assert.deepEqual(new Set(filtered.map((r) => r.id)), named);
    const rows = await ui.until('the list shows requests naming it', async () => {
      const ids = await ui.rowIds();
      return ids.length > 0 ? ids : null;
    });
    assert.ok(rows.every((id) => named.has(id)), `rows ${rows} all name ${name}`);
    // At namespace level the topic stays a box of its own.
    await ui.page.getByTestId('map-level').selectOption('namespace');
    await ui.until('the topic still drawn', async () => (await ui.mapNodeIds()).includes(orders));
    assert.deepEqual(ui.errors, []);
  } finally {
    await ui.page.close();
  }
});

test('the hover card of an edge into Redis lists its commands as the API counts them', { skip }, async () => {
  const ui = new PodtapPage(await browser.context.newPage());
  try {
    await ui.open(redis.url, '?level=pod');
    await replayed(ui, redis);
    const map = await api(ui, `${redis.url}/api/v1/map`);
    const into = map.edges.find((e) => e.protocols.includes('redis'));
    assert.ok(into, 'an edge that carries Redis');
    const q = `source=${encodeURIComponent(into.source)}&target=${encodeURIComponent(into.target)}`;
    const detail = await api(ui, `${redis.url}/api/v1/edge?${q}`);
    assert.equal(detail.more_operations, 0);
    assert.equal(sum(detail.operations, (o) => o.requests), into.requests, 'every command counted under its name');
    const edge = ui.page.locator(`[data-testid="map-edge"][data-source="${into.source}"][data-target="${into.target}"]`);
    await ui.until('the Redis edge drawn', async () => Number(await edge.getAttribute('data-requests').catch(() => -1)) === into.requests);
    await edge.hover();
    const rows = await ui.until('the card lists the commands', async () => {
      const r = await ui.page.$$eval('[data-testid="map-card-operations"] [data-op]', (els) => els.map((e) => ({
        op: e.dataset.op, requests: Number(e.dataset.requests), errors: Number(e.dataset.errors),
      })));
      return r.length > 0 ? r : null;
    });
    const want = detail.operations.map((o) => ({ op: o.operation, requests: o.requests, errors: o.errors }));
    assert.deepEqual(rows, want.slice(0, rows.length), 'the busiest first, as the API has them');
    assert.ok(rows.some((r) => r.op === 'SET') && rows.some((r) => r.errors > 0), `SET and an error among ${JSON.stringify(rows)}`);
    assert.deepEqual(ui.errors, []);
  } finally {
    await ui.page.close();
  }
});

test('the balance of the Redis Service shows the pool pinned to one replica, and why', { skip }, async () => {
  const ui = new PodtapPage(await browser.context.newPage());
  try {
    await ui.open(redis.url, '?service=data/redis');
    await replayed(ui, redis);
    const api = await (await ui.page.request.get(`${redis.url}/api/v1/services/data/redis/balance`)).json();
    const records = (await (await ui.page.request.get(`${redis.url}/api/v1/records?limit=10000&filter=kind:redis`)).json()).records;
    const busy = api.endpoints.find((e) => e.requests > 0);
    assert.equal(busy.requests, records.length, 'every command on one replica');
    assert.equal(api.endpoints.length, 2);
    const { rows, cause } = await ui.until('both replicas, as the API has them', async () => {
      const b = await ui.balance();
      return b.rows.length === 2 && b.rows.every((r) => r.requests === api.endpoints.find((e) => e.pod === r.pod)?.requests) ? b : null;
    });
    assert.deepEqual(rows.map((r) => r.requests).sort((a, b) => a - b), [0, records.length]);
    assert.equal(cause, api.cause);
    assert.match(cause, /sessionAffinity: ClientIP/);
    assert.deepEqual(ui.errors, []);
  } finally {
    await ui.page.close();
  }
});
