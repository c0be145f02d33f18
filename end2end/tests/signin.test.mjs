// Signing in with OpenID Connect in Chromium, against a real OpenID provider (oidc-provider on
// loopback, end2end/idp/idp.mjs): the page offers the organisation's sign-in; alice signs in on
// the provider's own pages and sees her namespace (shop) and, of the others, only locked boxes
// with the reason on hover; the header says who she is and what she sees; an admin ending her
// sign-ins ends her open stream; carol, who may see no namespace, gets a sentence; sign-out; and
// the audit log has every step. Then two hub replicas on a bus (a real NATS JetStream): signed in
// at one, she is signed in at the other; signed out at that one, she is at neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startPodtap, launchBrowser } from './podtap.page.mjs';

const ADMIN = 'admin-s3cret-token';

/** The test provider with podtap's client secret; resolves to {issuer, stop}. */
function startIdp(secret) {
  const script = new URL('../idp/idp.mjs', import.meta.url).pathname;
  const proc = spawn(process.execPath, [script, '--secret', secret], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the provider did not start in 20 s')), 20_000);
    createInterface({ input: proc.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve({ issuer: JSON.parse(line).issuer, stop: () => proc.kill('SIGTERM') });
    });
    proc.once('exit', (code) => reject(new Error(`the provider exited (${code})`)));
  });
}

/** Signs in as `user` on the provider's development login and consent pages. */
async function signIn(page, user) {
  await page.getByTestId('sign-in-oidc').click();
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'anything');
  await page.click('button[type=submit]');
  // The provider asks once to let podtap have the scopes.
  const consent = await page.waitForSelector('button[type=submit]:has-text("Continue")', { timeout: 10_000 }).catch(() => null);
  if (consent) await consent.click();
}

test('people sign in with OpenID Connect and see what their namespaces allow', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podtap-signin-'));
  const secret = 'client-s3cret';
  writeFileSync(join(dir, 'secret'), secret);
  writeFileSync(join(dir, 'scopes.yaml'), 'groups:\n  team-shop: [shop]\n');
  const idp = await startIdp(secret);
  const podtap = await startPodtap(['--token', ADMIN, '--oidc-issuer', idp.issuer, '--oidc-client-id', 'podtap',
    '--oidc-client-secret-file', join(dir, 'secret'), '--oidc-scopes', 'openid email groups',
    '--scopes', join(dir, 'scopes.yaml'), '--audit-log', join(dir, 'audit.jsonl')]);
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(podtap.url + '/');
    await page.waitForSelector('[data-testid="sign-in"]');
    await signIn(page, 'alice');

    // Back on podtap, signed in: who and what, in the header.
    const who = await page.waitForSelector('[data-testid="whoami"]', { timeout: 30_000 });
    assert.equal(await who.getAttribute('data-user'), 'alice');
    assert.match(await who.textContent(), /alice · shop/);
    assert.match(await who.getAttribute('title'), /scopes file grants group team-shop namespace shop/);

    // The map: shop's boxes, and the rest locked (their workload or kind only).
    // (The demo replays in real time: default's web pods call shop/api a few seconds in.)
    await page.waitForSelector('[data-testid="map-node"][data-level="locked"][data-id^="workload:default/"]', { timeout: 60_000 });
    const nodes = await page.$$eval('[data-testid="map-node"]', (els) => els.map((e) => ({ id: e.dataset.id, level: e.dataset.level })));
    for (const n of nodes.filter((n) => n.level !== 'locked')) {
      assert.match(n.id, /shop\//, `alice sees ${n.id} whole`);
    }
    const locked = nodes.filter((n) => n.level === 'locked').map((n) => n.id);
    assert.ok(locked.some((id) => id.startsWith('workload:default/')), `default's caller, locked: ${locked}`);
    assert.ok(locked.every((id) => !id.startsWith('pod:')), `no pod outside shop is named: ${locked}`);
    await page.hover(`[data-testid="map-node"][data-id="${locked[0]}"]`, { force: true });
    await page.waitForSelector('[data-testid="locked-reason"]');

    // The API, with the page's sign-in: alice, from OpenID Connect.
    const me = await page.evaluate(async () => (await fetch('/api/v1/whoami')).json());
    assert.deepEqual([me.user, me.source, me.namespaces], ['alice', 'oidc', ['shop']]);
    assert.ok(me.expires > Date.now() / 1000, 'the sign-in says when it ends');

    // An admin ends alice's sign-ins: her open stream ends at its next check (measured from a
    // tab on a page that is not the app, which reloads itself when its own stream ends).
    const probe = await browser.context.newPage();
    await probe.goto(podtap.url + '/healthz');
    const ended = probe.evaluate(() => new Promise((done) => {
      const ws = new WebSocket(location.origin.replace('http', 'ws') + '/api/v1/stream');
      const t0 = Date.now();
      ws.onmessage = (m) => { const t = JSON.parse(m.data).type; if (t === 'error') done({ error: true, ms: Date.now() - t0 }); };
      ws.onclose = () => done({ closed: true, ms: Date.now() - t0 });
    }));
    await new Promise((r) => setTimeout(r, 1500));
    const revoked = await fetch(`${podtap.url}/api/v1/signins?user=alice`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(revoked.status, 200);
    assert.deepEqual(await revoked.json(), { ended: 1 });
    const end = await ended;
    assert.ok(end.ms < 25_000, `the stream ended ${JSON.stringify(end)}`);
    await probe.close();
    // The page's own stream ended too, and the page asks her to sign in again by itself.
    await page.waitForSelector('[data-testid="sign-in"]', { timeout: 40_000 });

    // carol may see no namespace: a sentence, not an empty map.
    await browser.context.clearCookies();
    await page.goto(podtap.url + '/');
    await signIn(page, 'carol');
    const nothing = await page.waitForSelector('[data-testid="no-namespace"]', { timeout: 30_000 });
    assert.match(await nothing.textContent(), /no namespace/);
    assert.equal(await page.$('[data-testid="map-node"]'), null);

    // Sign-out ends the sign-in: the page asks to sign in again.
    await page.getByTestId('sign-out').click();
    await page.waitForSelector('[data-testid="sign-in"]');
    const after = await page.evaluate(async () => (await fetch('/api/v1/whoami')).status);
    assert.equal(after, 401);

    // The audit log has each of it.
    const events = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const seen = (event, user) => events.some((e) => e.event === event && (e.user ?? e.by) === user);
    assert.ok(seen('sign_in', 'alice') && seen('sign_in', 'carol'), 'sign-ins');
    assert.ok(events.some((e) => e.event === 'signed_out_by' && e.user === 'alice' && e.count === 1), 'the admin ended alice\'s');
    assert.ok(seen('sign_out', 'carol'), 'carol signed out');
  } finally {
    await browser.close();
    podtap.stop();
    idp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A NATS JetStream server of its own (built by `cargo xtask setup`) on a port the kernel picks,
 * its store in `dir`; resolves to {url, stop}. */
async function startBus(dir) {
  const bin = process.env.PODTAP_NATS_SERVER
    ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'podtap/nats-v2.15.3/nats-server');
  assert.ok(existsSync(bin), `${bin} is missing: cargo xtask setup builds it`);
  const log = join(dir, 'nats.log');
  const proc = spawn(bin, ['--jetstream', '--addr', '127.0.0.1', '--port', '-1', '--store_dir', join(dir, 'store'), '--log', log],
    { stdio: 'ignore' });
  const stop = () => proc.kill('SIGTERM');
  const exited = new Promise((done) => proc.once('exit', done));
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    const port = text.match(/Listening for client connections on 127\.0\.0\.1:(\d+)/);
    if (port && text.includes('Server is ready')) return { url: `nats://127.0.0.1:${port[1]}`, stop, stopped: () => { stop(); return exited; } };
    await new Promise((r) => setTimeout(r, 50));
  }
  stop();
  throw new Error('nats-server did not start in 20 s');
}

test('a person signed in at one hub replica on a bus is signed in at the other, and signed out at both', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podtap-signin-bus-'));
  const secret = 'client-s3cret';
  writeFileSync(join(dir, 'secret'), secret);
  writeFileSync(join(dir, 'scopes.yaml'), 'groups:\n  team-shop: [shop]\n');
  const idp = await startIdp(secret);
  const bus = await startBus(dir);
  const replica = (i) => startPodtap(['--token', ADMIN, '--bus', bus.url, '--replica', `${i}/2`,
    '--ingest', '127.0.0.1:0', '--link-key', 'the-key-every-replica-is-given',
    '--oidc-issuer', idp.issuer, '--oidc-client-id', 'podtap', '--oidc-client-secret-file', join(dir, 'secret'),
    '--oidc-scopes', 'openid email groups', '--scopes', join(dir, 'scopes.yaml')], {}, 'hub');
  const hubs = [await replica(0), await replica(1)];
  const browser = await launchBrowser();
  /** alice's sign-ins as replica `i` lists them to the admin. */
  const listed = async (i) => (await (await fetch(`${hubs[i].url}/api/v1/signins`, { headers: { authorization: `Bearer ${ADMIN}` } })).json())
    .filter((s) => s.user === 'alice').length;
  const until = async (what, done) => {
    for (const deadline = Date.now() + 10_000; !(await done());) {
      assert.ok(Date.now() < deadline, what);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    const page = await browser.context.newPage();
    await page.goto(hubs[0].url + '/');
    await page.waitForSelector('[data-testid="sign-in"]');
    await signIn(page, 'alice');
    const who = await page.waitForSelector('[data-testid="whoami"]', { timeout: 30_000 });
    assert.equal(await who.getAttribute('data-user'), 'alice');

    // Replica 1 knows the sign-in (the cookie is the host's, whatever the port): its page and API say alice.
    await until('replica 1 lists alice\'s sign-in', async () => (await listed(1)) === 1);
    const other = await browser.context.newPage();
    await other.goto(hubs[1].url + '/');
    const there = await other.waitForSelector('[data-testid="whoami"]', { timeout: 30_000 });
    assert.equal(await there.getAttribute('data-user'), 'alice');
    const me = await other.evaluate(async () => (await fetch('/api/v1/whoami')).json());
    assert.deepEqual([me.user, me.source, me.namespaces], ['alice', 'oidc', ['shop']]);

    // Signed out at replica 1: replica 0 no longer knows her either.
    await other.getByTestId('sign-out').click();
    await other.waitForSelector('[data-testid="sign-in"]');
    await until('replica 0 forgets the sign-in', async () => (await listed(0)) === 0);
    assert.equal(await page.evaluate(async () => (await fetch('/api/v1/whoami')).status), 401);
    assert.match(hubs[0].log(), /merging partitions/);
  } finally {
    await browser.close();
    await Promise.all(hubs.map((h) => h.stopped()));
    await bus.stopped();
    idp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
