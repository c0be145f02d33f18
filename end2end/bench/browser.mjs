// The browser benchmark: `podtap serve --synthetic RATE` (1,000 pods, 3,000 caller → callee
// pairs) with the page open in headless Chromium for SECS seconds, live. Measures what a user
// feels: frame times (requestAnimationFrame deltas), long tasks, record-to-screen lag (the newest
// row's request time against the clock, sampled 4 times a second) and the JS heap over the run;
// and the server's lag (its newest record's request time against the clock, from /healthz).
// With a capture directory instead of RATE (a synthetic cluster's capture.pcapng and
// cluster.json: backend/examples/synth_cluster.rs), that capture is looped in real time through
// the whole engine (`serve --pcap … --loop --realtime`) instead of records made up past it.
// Prints one JSON object. Run: `cargo xtask bench-browser [SECS] [RATE|capture]` (BENCHMARKS.md).
// With PODTAP_PROFILE=FILE or PODTAP_TRACE=FILE the live part is also recorded (record.mjs).
import { existsSync } from 'node:fs';
import { launchBrowser, startPodtap } from '../tests/podtap.page.mjs';
import { record } from './record.mjs';

const secs = Number(process.argv[2] ?? 60);
const source = process.argv[3] ?? '20000';
const capture = existsSync(source + '/capture.pcapng') ? source : null;
const args = capture
  ? ['--pcap', capture + '/capture.pcapng', '--cluster', capture + '/cluster.json', '--loop', '--realtime']
  : ['--synthetic', source];

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round = (x) => (x == null ? null : Math.round(x * 10) / 10);

const server = await startPodtap(args);
const browser = await launchBrowser(['--enable-precise-memory-info']);
try {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url + '/');
  await page.waitForSelector('[data-testid="timeline-row"]', { timeout: 30000 });
  await page.waitForTimeout(5000); // warm up: the first snapshot, the first lanes
  await page.evaluate(() => {
    window.__frames = [];
    window.__long = [];
    let last = performance.now();
    const tick = (t) => { window.__frames.push(t - last); last = t; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({ entryTypes: ['longtask'] });
  });
  const stopRecording = await record(page);
  const heap = async () => page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
  const heapStart = await heap();
  const lags = [];
  const serverLags = [];
  const heaps = [];
  const started = Date.now();
  const firstRecords = (await (await page.request.get(server.url + '/healthz')).json()).records;
  while (Date.now() - started < secs * 1000) {
    await page.waitForTimeout(250);
    const h = await (await page.request.get(server.url + '/healthz')).json();
    if (h.store?.newest_us) serverLags.push(Date.now() - h.store.newest_us / 1000);
    const sample = await page.evaluate(() => {
      const row = document.querySelector('[data-testid="timeline-row"] td');
      if (!row) return null;
      const [h, m, rest] = row.textContent.split(':');
      const [s, ms] = rest.split('.');
      const d = new Date();
      d.setHours(Number(h), Number(m), Number(s), Number(ms));
      return Date.now() - d.getTime();
    });
    if (sample != null) lags.push(sample);
    if (lags.length % 20 === 0) heaps.push(await heap());
  }
  const heapEnd = await heap();
  await stopRecording();
  const { frames, long } = await page.evaluate(() => ({ frames: window.__frames, long: window.__long }));
  const lanes = await page.locator('.lanes-count').textContent();
  const mapShown = await page.getByTestId('map').evaluate((m) => ({ level: m.dataset.level, boxes: Number(m.dataset.boxes), edges: Number(m.dataset.edges) }));
  const sampled = await page.getByTestId('sampled').textContent().catch(() => null);
  const health = await (await page.request.get(server.url + '/healthz')).json();
  const elapsed = (Date.now() - started) / 1000;
  // Records per second the server made while the page was open: the offered rate, or less.
  const rate = Math.round((health.records - firstRecords) / elapsed);

  // A chosen window of 100,000 requests: load it, then zoom and pan the lanes for 10 s.
  const newest = health.store.newest_us;
  const span = Math.round(100000 / rate * 1e6);
  const from = newest - span;
  const win = await browser.context.newPage();
  const loadStart = Date.now();
  await win.goto(`${server.url}/?from=${from}&to=${newest}`);
  await win.waitForFunction(() => /^\d+ requests$/.test(document.querySelector('[data-testid="list-count"]')?.textContent ?? ''), null, { timeout: 120000 });
  const windowRequests = Number((await win.getByTestId('list-count').textContent()).split(' ')[0]);
  const loadMs = Date.now() - loadStart;
  await win.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (t) => { window.__frames.push(t - last); last = t; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  const lanesBox = await win.locator('.lanes').boundingBox();
  const until = Date.now() + 10000;
  let step = 0;
  while (Date.now() < until) {
    await win.mouse.move(lanesBox.x + 300 + (step % 5) * 100, lanesBox.y + 100);
    await win.mouse.wheel(0, step % 4 < 2 ? -200 : 200);
    await win.mouse.down();
    await win.mouse.move(lanesBox.x + 200 + (step % 5) * 100, lanesBox.y + 100, { steps: 4 });
    await win.mouse.up();
    step += 1;
  }
  const winFrames = await win.evaluate(() => window.__frames);
  await win.close();

  console.log(JSON.stringify({
    window: {
      requests: windowRequests, load_ms: loadMs, frames: winFrames.length,
      frame_ms: { p50: round(pct(winFrames, 50)), p95: round(pct(winFrames, 95)), p99: round(pct(winFrames, 99)) },
    },
    source: capture ?? `--synthetic ${source}`, rate, secs,
    server_lag_ms: { p50: Math.round(pct(serverLags, 50)), p99: Math.round(pct(serverLags, 99)), max: Math.round(Math.max(...serverLags)) },
    frames: frames.length,
    fps: round(frames.length / secs),
    frame_ms: { p50: round(pct(frames, 50)), p95: round(pct(frames, 95)), p99: round(pct(frames, 99)), max: round(Math.max(...frames)) },
    long_tasks: long.length,
    long_task_ms_total: Math.round(long.reduce((a, b) => a + b, 0)),
    lag_ms: { p50: pct(lags, 50), p99: pct(lags, 99), max: Math.max(...lags) },
    heap_mb: { start: round(heapStart / 1e6), end: round(heapEnd / 1e6), max: round(Math.max(...heaps, heapEnd) / 1e6) },
    lanes, sampled, map: mapShown,
    server_records: health.records,
    errors,
  }, null, 1));
} finally {
  await browser.close();
  server.stop();
}
