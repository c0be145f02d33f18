// Page object and process helpers for podtap's browser tests: start `podtap serve` on a free
// loopback port, launch Debian's Chromium through playwright-core, and read the UI through the
// DOM hooks DESIGN.md promises (map-node, map-edge, timeline-row, balance-row, filter-input).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.PODTAP_BIN ?? new URL('../../target/debug/podtap', import.meta.url).pathname;
const ASSETS = process.env.PODTAP_ASSETS ?? new URL('../../dist', import.meta.url).pathname;

/** Starts `podtap COMMAND ARGS` (`serve` unless told) on 127.0.0.1:0 unless ARGS say `--listen` (with `env` added);
 * resolves once it logs its address. */
export function startPodtap(args = [], env = {}, command = 'serve') {
  const listen = args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0'];
  const proc = spawn(BIN, [command, ...listen, '--assets', ASSETS, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PODTAP_LOG: 'info', ...env },
  });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`podtap did not start in 20 s:\n${log}`)), 20_000);
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(/podtap serving (http:\/\/[0-9.:]+)/);
      if (m) {
        clearTimeout(timer);
        const exited = new Promise((done) => proc.once('exit', done));
        resolve({ url: m[1], stop: () => proc.kill('SIGTERM'), stopped: () => { proc.kill('SIGTERM'); return exited; }, log: () => log });
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`podtap exited (${code}):\n${log}`)); });
  });
}

/** Debian's Chromium, headless, with a fresh profile and no background networking (and `extra` flags). */
export async function launchBrowser(extra = []) {
  const profile = mkdtempSync(join(tmpdir(), 'podtap-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extra],
  });
  return { context, close: async () => { await context.close(); rmSync(profile, { recursive: true, force: true }); } };
}

export class PodtapPage {
  constructor(page) {
    this.page = page;
    this.errors = [];
    page.on('pageerror', (e) => this.errors.push(String(e)));
    // A Content-Security-Policy that blocks part of the app shows as a console error.
    page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) this.errors.push(m.text()); });
  }

  async open(url, query = '') {
    await this.page.goto(url + '/' + query);
    await this.page.waitForSelector('[data-testid="status"]');
  }

  get filter() { return this.page.getByTestId('filter-input'); }

  async mapNodeIds() {
    return this.page.$$eval('[data-testid="map-node"]', (els) => els.map((e) => e.dataset.id).sort());
  }

  /** Every edge as {source, target, requests, connections}. */
  async edges() {
    return this.page.$$eval('[data-testid="map-edge"]', (els) => els.map((e) => ({
      source: e.dataset.source, target: e.dataset.target,
      requests: Number(e.dataset.requests), connections: Number(e.dataset.connections),
    })));
  }

  /** The balance rows as {pod, requests, connections, probes}, and the cause sentence. */
  async balance() {
    const rows = await this.page.$$eval('[data-testid="balance-row"]', (els) => els.map((e) => ({
      pod: e.dataset.pod, requests: Number(e.dataset.requests),
      connections: Number(e.dataset.connections), probes: Number(e.dataset.probes),
    })));
    const cause = await this.page.getByTestId('balance-cause').textContent().catch(() => '');
    return { rows, cause };
  }

  async rowCount() { return this.page.locator('[data-testid="timeline-row"]').count(); }

  /** The ids of the list's rows in view, top first. */
  async rowIds() { return this.page.$$eval('[data-testid="timeline-row"]', (els) => els.map((e) => Number(e.dataset.id))); }

  /**
   * Every swimlane, scrolling the lanes through (only the lanes in view are in the DOM):
   * {conn, requests, src, dst, probe, bars: [ids in the DOM]}.
   */
  async lanes() {
    const box = this.page.locator('.lanes');
    const seen = new Map();
    const height = await box.evaluate((el) => el.scrollHeight);
    for (let top = 0; top <= height; top += 250) {
      await box.evaluate((el, t) => { el.scrollTop = t; el.dispatchEvent(new Event('scroll')); }, top);
      await this.frames();
      const lanes = await this.page.$$eval('[data-testid="timeline-lane"]', (els) => els.map((e) => ({
        conn: Number(e.dataset.conn), requests: Number(e.dataset.requests), src: e.dataset.src, dst: e.dataset.dst,
        probe: e.classList.contains('probe'),
        bars: [...e.querySelectorAll('[data-testid="timeline-bar"]')].map((b) => Number(b.dataset.id)),
      })));
      for (const l of lanes) seen.set(l.conn, l);
    }
    await box.evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    return [...seen.values()];
  }

  /** Scrolls lane `conn` into view and returns its locator. */
  async lane(conn) {
    const box = this.page.locator('.lanes');
    const height = await box.evaluate((el) => el.scrollHeight);
    for (let top = 0; top <= height; top += 250) {
      await box.evaluate((el, t) => { el.scrollTop = t; el.dispatchEvent(new Event('scroll')); }, top);
      await this.frames();
      const lane = this.page.locator(`[data-testid="timeline-lane"][data-conn="${conn}"]`);
      if (await lane.count()) return lane;
    }
    throw new Error(`lane ${conn} not found`);
  }

  /** The detail panel: its record id and texts. */
  async detail() {
    const panel = this.page.getByTestId('record-detail');
    if (!(await panel.count())) return null;
    return {
      id: Number(await panel.getAttribute('data-id')),
      pod: await this.page.getByTestId('detail-pod').textContent().catch(() => ''),
      service: await this.page.getByTestId('detail-service').textContent().catch(() => ''),
      path: await this.page.getByTestId('detail-path').textContent().catch(() => ''),
      connRequests: await this.page.locator('[data-testid="detail-conn-request"]').count(),
      text: await panel.textContent(),
    };
  }

  async rowTexts() { return this.page.$$eval('[data-testid="timeline-row"]', (els) => els.map((e) => e.textContent)); }

  /** The stream worker's socket state (`WebSocket.readyState`, 1 when open), or null when the
   * page has no stream worker (frontend/stream-worker.js). */
  async streamWorkerSocket() {
    const worker = this.page.workers().find((w) => /podtap-stream-[0-9a-f]{16}\.js$/.test(w.url()));
    if (!worker) return null;
    return worker.evaluate(() => (typeof socket === 'undefined' || socket == null ? -1 : socket.readyState));
  }

  /**
   * Until the page has drawn two more frames: what a scroll or a click changed is on screen then,
   * however slow the machine (a fixed wait is luck).
   */
  async frames() {
    await this.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  }

  /** Waits until `check()` returns something truthy (polling), or fails with `what`. */
  async until(what, check, timeout = 20_000) {
    const deadline = Date.now() + timeout;
    let last;
    while (Date.now() < deadline) {
      last = await check();
      if (last) return last;
      await this.page.waitForTimeout(200);
    }
    throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
  }
}
