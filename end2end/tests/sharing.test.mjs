// Sharing in a real browser: a saved session opened by its link in a fresh browser with no token
// shows the same counts, selection and lanes after new traffic and after a restart; expired and
// tampered links are refused; the token leaves the address at once; a page of a second loopback
// origin embeds the map when its origin is allowed and cannot when it is not, and a postMessage
// round trip sets the filter and hears the selection; the app works behind a path-prefix proxy,
// WebSocket included; the HAR export validates against the HAR 1.2 schema.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import harValidator from 'har-validator';
import { launchBrowser, PodtapPage, startPodtap } from './podtap.page.mjs';

const TOKEN = 'e2e-sharing-token-0123';
let browser;
const cleanup = [];
before(async () => { browser = await launchBrowser(); });
after(async () => {
  for (const c of cleanup.reverse()) await c();
  await browser?.close();
});

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A server on another loopback port; `handler(req, res)`. */
async function site(handler) {
  const server = createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise((r) => server.close(r)));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** The map's edges as `source→target: requests`, sorted. */
async function edgeCounts(p) {
  const edges = await p.edges();
  return edges.map((e) => `${e.source}→${e.target}: ${e.requests}`).sort();
}

async function api(url, init = {}) {
  const resp = await fetch(url, { ...init, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });
  return { status: resp.status, body: await resp.text() };
}

test('a saved session opens the same for a colleague, after new traffic and a restart; bad links are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podtap-e2e-sessions-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--token', TOKEN, '--data-dir', dir];
  let podtap = await startPodtap(args);
  cleanup.push(() => podtap.stop());

  // The admin opens podtap with the token: it becomes a cookie and leaves the address.
  const admin = new PodtapPage(await browser.context.newPage());
  await admin.page.goto(`${podtap.url}/?token=${TOKEN}`);
  assert.ok(!admin.page.url().includes('token'), admin.page.url());
  await admin.until('the live view', async () => (await admin.page.getByTestId('status').textContent()) === 'live');
  await admin.until('traffic', async () => (await admin.edges()).length > 3);
  // A window of what arrived, settled (a request's record comes once it is complete, so the
  // window ends 3 s before the newest record), and one request of it selected.
  const edge = async (query) => JSON.parse((await api(`${podtap.url}/api/v1/records?limit=1&${query}`)).body).records[0]?.ts ?? 0;
  const oldest = await edge('from=0');
  const newest = await admin.until('8 s of traffic', async () => {
    const n = await edge('');
    return n - oldest > 8_000_000 && n;
  }, 60_000);
  const to = newest - 3_000_000;
  const from = to - 4_000_000;
  // On a loaded machine a request of the window may still be on its way: wait until the
  // window's timeline reads the same twice, a second and a half apart.
  let last = '';
  await admin.until('a settled window', async () => {
    const now = (await api(`${podtap.url}/api/v1/timeline?from=${from}&to=${to}`)).body;
    const same = now === last;
    last = now;
    if (!same) await new Promise((r) => setTimeout(r, 1500));
    return same;
  }, 30_000);
  await admin.page.goto(`${podtap.url}/?from=${from}&to=${to}`);
  await admin.until('the window', async () => (await admin.edges()).length > 0 && !(await admin.page.getByTestId('window-loading').count()));
  const bar = admin.page.locator('[data-testid="timeline-bar"]').first();
  await bar.click();
  const selected = await admin.until('a selection', async () => (await admin.detail())?.id);
  const counts = await edgeCounts(admin);
  // Lanes with requests: a connection's own record comes when it closes, so one opened in the
  // window but closed after this page read it may join the lanes by the time the session is saved.
  const laneKeys = (all) => all.filter((l) => l.requests > 0).map((l) => `${l.conn}:${l.requests}`).sort();
  const lanes = laneKeys(await admin.lanes());
  await admin.page.getByTestId('share').click();
  await admin.page.getByTestId('save-session').click();
  const link = await admin.until('the link', async () => admin.page.getByTestId('share-url').inputValue().catch(() => ''));
  assert.match(link, /\/s\/[A-Za-z0-9_-]+\?exp=\d+&sig=/);
  assert.ok(!link.includes(TOKEN), 'no secret in the link');
  const embedCode = await admin.page.getByTestId('embed-code').inputValue();
  assert.match(embedCode, /<iframe src="http:\/\/127\.0\.0\.1:\d+\/embed\/map\?session=/);

  // A colleague: a fresh browser context, no cookie, no token, after more traffic.
  await admin.page.waitForTimeout(2000);
  const colleague = await browser.context.browser().newContext();
  cleanup.push(() => colleague.close());
  const open = async () => {
    const p = new PodtapPage(await colleague.newPage());
    await p.page.goto(link);
    await p.until('the session', async () => (await p.page.getByTestId('session').count()) && (await p.edges()).length > 0
      && !(await p.page.getByTestId('window-loading').count()));
    return p;
  };
  let seen = await open();
  assert.deepEqual(await edgeCounts(seen), counts, 'the same map');
  assert.equal((await seen.until('the selection', async () => seen.detail()))?.id, selected, 'the same selection');
  assert.deepEqual(laneKeys(await seen.lanes()), lanes, 'the same lanes');
  assert.equal(await seen.page.getByTestId('share').textContent(), 'Export', 'a link holder cannot share further');
  // The selected request's connection downloads from the session, packets and all.
  const href = await seen.page.getByTestId('detail-export-pcapng').getAttribute('href');
  assert.match(href, /\/api\/v1\/sessions\/[^/]+\/export\?format=pcapng&filter=&conn=\d+&link=/);
  const pcap = await seen.page.evaluate(async (h) => {
    const r = await fetch(h);
    return [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength];
  }, href);
  assert.deepEqual(pcap.slice(0, 2), [200, 'application/x-pcapng']);
  assert.ok(pcap[2] > 200, `${pcap[2]} bytes`);
  assert.equal((await fetch(`${podtap.url}/api/v1/map`)).status, 401, 'the colleague has no admin access');
  assert.deepEqual(seen.errors, []);
  await seen.page.close();
  // The embed code's page shows the same map, chrome-less.
  const embedded = new PodtapPage(await colleague.newPage());
  await embedded.page.goto(embedCode.match(/src="([^"]+)"/)[1]);
  await embedded.until('the embedded map', async () => (await embedded.edges()).length > 0);
  assert.deepEqual(await edgeCounts(embedded), counts, 'the embedded session map');
  assert.equal(await embedded.page.locator('header').count(), 0);
  await embedded.page.close();

  // After a restart of podtap: the same.
  await podtap.stopped();
  podtap = await startPodtap(args);
  seen = await open();
  assert.deepEqual(await edgeCounts(seen), counts, 'the same map after a restart');
  assert.equal((await seen.until('the selection', async () => seen.detail()))?.id, selected);
  await seen.page.close();

  // An expired link and a tampered one.
  const made = JSON.parse((await api(`${podtap.url}/api/v1/sessions`, { method: 'POST', body: JSON.stringify({ ttl_s: 1 }) })).body);
  await new Promise((r) => setTimeout(r, 2100));
  const p = await colleague.newPage();
  const expired = await p.goto(podtap.url + made.url);
  assert.equal(expired.status(), 410);
  assert.match(await p.textContent('body'), /expired/);
  const tampered = await p.goto(link.replace(/sig=(.)/, (_, c) => `sig=${c === 'A' ? 'B' : 'A'}`));
  assert.equal(tampered.status(), 403);
  assert.match(await p.getByTestId('link-refused').textContent(), /signature does not match/);

  // The admin's list of saved sessions (the sign-in survived the restart); deleting the one the
  // link opens revokes the link.
  await admin.page.goto(podtap.url + '/');
  await admin.page.getByTestId('share').click();
  await admin.page.locator('details.saved summary').click();
  const rows = admin.page.getByTestId('session-row');
  await admin.until('two saved sessions', async () => (await rows.count()) === 2);
  const id = link.match(/\/s\/([^?]+)/)[1];
  await admin.page.locator(`[data-testid="session-row"][data-id="${id}"] [data-testid="session-delete"]`).click();
  await admin.until('the row gone', async () => (await rows.count()) === 1);
  const revoked = await p.goto(link);
  assert.equal(revoked.status(), 403);
  assert.match(await p.textContent('body'), /revoked/);
  await p.close();
});

test('with a token and no cookie the page asks to sign in, and signing in opens it', async () => {
  const podtap = await startPodtap(['--token', TOKEN]);
  cleanup.push(() => podtap.stop());
  const context = await browser.context.browser().newContext();
  cleanup.push(() => context.close());
  const p = new PodtapPage(await context.newPage());
  await p.page.goto(`${podtap.url}/?filter=ns%3Ashop`);
  await p.page.getByTestId('sign-in').waitFor();
  await p.page.getByTestId('sign-in-token').fill(TOKEN);
  await p.page.getByTestId('sign-in-submit').click();
  await p.until('the live view', async () => (await p.page.getByTestId('status').textContent().catch(() => '')) === 'live');
  assert.equal(new URL(p.page.url()).search, '?filter=ns%3Ashop', 'back where it was, with no token in the address');
});

/** A portal page embedding `src`, recording podtap's messages and sending `script`'s. */
function portalPage(src) {
  return `<!doctype html><title>portal</title><iframe id=f src="${src}" width=1000 height=700></iframe><script>
    window.heard = [];
    window.addEventListener('message', (e) => { window.heard.push({ origin: e.origin, data: e.data }); });
    window.send = (msg) => document.getElementById('f').contentWindow.postMessage(msg, new URL(${JSON.stringify(src)}).origin);
  </script>`;
}

test('a portal embeds the map when its origin is allowed, and talks to it by postMessage', async () => {
  let html = '';
  const portal = await site((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  const podtap = await startPodtap(['--token', TOKEN, '--embed-origin', portal.origin]);
  cleanup.push(() => podtap.stop());
  const made = JSON.parse((await api(`${podtap.url}/api/v1/links`, { method: 'POST', body: JSON.stringify({ filter: '', ttl_s: 600 }) })).body);
  const [, query] = made.url.split('?');
  html = portalPage(`${podtap.url}/embed/map?link=${made.id}&${query}&theme=dark`);
  const page = await browser.context.newPage();
  await page.goto(portal.origin + '/');
  const frame = page.frameLocator('#f');
  await frame.locator('[data-testid="map-node"]').first().waitFor({ timeout: 20_000 });
  assert.equal(await frame.locator('header').count(), 0, 'chrome-less');
  const ready = await page.waitForFunction(() => window.heard.find((m) => m.data?.type === 'podtap:ready'));
  const readyMsg = await ready.jsonValue();
  assert.equal(readyMsg.origin, podtap.url);
  assert.equal(readyMsg.data.view, 'map');
  assert.equal(readyMsg.data.scope, 'live');
  assert.equal(await page.frames()[1].evaluate(() => document.documentElement.dataset.theme), 'dark');

  // setFilter narrows the embedded map (once traffic of both namespaces has been seen).
  const ids = async () => frame.locator('[data-testid="map-node"]').evaluateAll((els) => els.map((e) => e.dataset.id));
  const until = async (what, check) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const got = await check();
      if (got) return got;
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await page.waitForTimeout(200);
    }
  };
  const before = await until('both namespaces', async () => {
    const all = await ids();
    return all.some((id) => id.startsWith('pod:shop/')) && all.some((id) => id.startsWith('pod:default/web')) && all;
  });
  await page.evaluate(() => window.send({ type: 'podtap:setFilter', filter: 'ns:shop' }));
  const narrowed = await until('the narrowed map', async () => {
    const all = await ids();
    return all.length > 0 && !all.some((id) => id.startsWith('pod:default/web')) && all;
  });
  assert.ok(narrowed.length < before.length, `${narrowed.length} of ${before.length}`);
  // select → selected, with the record.
  const id = JSON.parse((await api(`${podtap.url}/api/v1/records?limit=1&filter=ns:shop`)).body).records[0].id;
  await page.evaluate((n) => window.send({ type: 'podtap:select', id: n }), id);
  const selected = await page.waitForFunction((n) => window.heard.find((m) => m.data?.type === 'podtap:selected' && m.data.id === n), id);
  assert.equal((await selected.jsonValue()).origin, podtap.url);
  // A message from a page that is not allowed changes nothing: tested by a third origin below.
  await page.close();
});

test('a portal whose origin is not allowed cannot frame podtap', async () => {
  let html = '';
  const allowed = await site((_, res) => res.writeHead(200).end('allowed'));
  const other = await site((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  const podtap = await startPodtap(['--embed-origin', allowed.origin]);
  cleanup.push(() => podtap.stop());
  html = portalPage(`${podtap.url}/embed/map`);
  const page = await browser.context.newPage();
  const blocked = [];
  page.on('console', (m) => { if (/frame-ancestors/.test(m.text())) blocked.push(m.text()); });
  await page.goto(other.origin + '/');
  // Chromium says so on the console when it refuses; the page gets a moment more to show anything.
  const deadline = Date.now() + 10_000;
  while (!blocked.length && Date.now() < deadline) await page.waitForTimeout(100);
  await page.waitForTimeout(500);
  const inner = page.frames().find((f) => f.url().includes('/embed/map'));
  const nodes = inner ? await inner.locator('[data-testid="map-node"]').count().catch(() => 0) : 0;
  assert.equal(nodes, 0, 'nothing of podtap renders in a frame it does not allow');
  assert.ok(blocked.length > 0, 'the browser says frame-ancestors refused it');
  await page.close();
});

/** A reverse proxy at `/podtap/` that strips the prefix, WebSocket upgrades included, and sends
 * podtap its own upstream `Host` with the browser's in `X-Forwarded-Host` (as nginx does with
 * `proxy_set_header X-Forwarded-Host $host`). */
async function prefixProxy(target) {
  const t = new URL(target);
  const strip = (url) => url.replace(/^\/podtap/, '') || '/';
  const { server, origin } = await site((req, res) => {
    if (!req.url.startsWith('/podtap/')) return res.writeHead(404).end('not podtap');
    const up = httpRequest({ host: t.hostname, port: t.port, path: strip(req.url), method: req.method,
      headers: { ...req.headers, host: t.host, 'x-forwarded-host': req.headers.host, 'x-forwarded-prefix': '/podtap' } }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    const up = connect(Number(t.port), t.hostname, () => {
      const lines = [`${req.method} ${strip(req.url)} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i];
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? t.host : req.rawHeaders[i + 1]}`);
      }
      lines.push(`X-Forwarded-Host: ${req.headers.host}`, 'X-Forwarded-Prefix: /podtap');
      up.write(lines.join('\r\n') + '\r\n\r\n');
      up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  return origin;
}

test('behind a path-prefix proxy the app, its API and its stream work', async () => {
  const podtap = await startPodtap(['--base-path', '/podtap/']);
  cleanup.push(() => podtap.stop());
  const proxy = await prefixProxy(podtap.url);
  // The proxy's origin is podtap's origin for the browser; podtap checks the Host it is sent.
  const p = new PodtapPage(await browser.context.newPage());
  await p.page.goto(`${proxy}/podtap/`);
  await p.until('the live view through the proxy', async () => (await p.page.getByTestId('status').textContent().catch(() => '')) === 'live');
  await p.until('the map', async () => (await p.edges()).length > 3);
  await p.until('rows', async () => (await p.rowCount()) > 0);
  // The stream's worker came from under the prefix too, and holds the socket.
  assert.equal(await p.streamWorkerSocket(), 1);
  assert.deepEqual(p.errors, []);
  await p.page.close();
});

test('the HAR export validates against the HAR 1.2 schema', async () => {
  const podtap = await startPodtap();
  cleanup.push(() => podtap.stop());
  const page = new PodtapPage(await browser.context.newPage());
  await page.open(podtap.url);
  const har = await page.until('a HAR of 10 requests or more', async () => {
    const h = JSON.parse((await api(`${podtap.url}/api/v1/export?format=har`)).body);
    return h.log.entries.length >= 10 && h;
  }, 60_000);
  await harValidator.har(har); // rejects with the schema errors
  // The page's download link points at the same export.
  await page.page.getByTestId('share').click();
  const href = await page.page.getByTestId('export-har').getAttribute('href');
  assert.match(href, /^\/api\/v1\/export\?format=har&filter=/);
  await page.page.close();
});
