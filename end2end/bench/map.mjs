// The Service Map benchmark on a synthetic cluster as a user brings it — a capture and its List
// (backend/examples/synth_cluster.rs: 1,000 pods in 50 namespaces, 3,000 caller → callee pairs):
//  1. the capture replayed whole, a fresh page: time to the first full map (every request of the
//     capture on it), layout time at each level, frame times while panning and zooming, and
//     focusing a pod, and whether every workload's count equals the generator's truth;
//  2. the capture looped in real time for SECS seconds: the cost of each update, frame times, and
//     the JS heap.
// Prints one JSON object. Run: `cargo xtask bench-map [SECS]` (BENCHMARKS.md). With PODTAP_PROFILE=FILE or
// PODTAP_TRACE=FILE, each pan and zoom is also recorded, into FILE with the level before its
// extension (record.mjs).
import { readFileSync } from 'node:fs';
import { launchBrowser, startPodtap } from '../tests/podtap.page.mjs';
import { record } from './record.mjs';

const dir = process.argv[2];
const secs = Number(process.argv[3] ?? 60);
const truth = JSON.parse(readFileSync(dir + '/truth.json'));
const capture = ['--pcap', dir + '/capture.pcapng', '--cluster', dir + '/cluster.json'];

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round = (x) => (x == null ? null : Math.round(x * 10) / 10);
const frameStats = (f) => ({ frames: f.length, p50: round(pct(f, 50)), p95: round(pct(f, 95)), p99: round(pct(f, 99)), max: round(Math.max(...f)) });

/** Counts rAF deltas from now on (window.__frames). */
const recordFrames = (page) => page.evaluate(() => {
  window.__frames = [];
  let last = performance.now();
  const tick = (t) => { window.__frames.push(t - last); last = t; window.__raf = requestAnimationFrame(tick); };
  window.__raf = requestAnimationFrame(tick);
});
const takeFrames = (page) => page.evaluate(() => { cancelAnimationFrame(window.__raf); return window.__frames; });
const mapAttr = (page, name) => page.getByTestId('map').getAttribute(name);

/** Where the hooks' layer was moved to: it follows the camera. */
const camera = (page) => page.locator('[data-testid="map"] .map-hooks > g').first().getAttribute('transform');

/** Pans and zooms the map for `ms`: wheel in and out around moving points, and drags. The map
 * is scrolled into view first (below the timeline it starts under the fold, where a wheel would
 * scroll the page instead), and the camera must have moved. */
async function panAndZoom(page, ms, name) {
  const stopRecording = await record(page, name);
  await page.getByTestId('map').scrollIntoViewIfNeeded();
  await page.waitForTimeout(300);
  const box = await page.getByTestId('map').boundingBox();
  if (box.y < 0 || box.y + 480 > 900) throw new Error(`the map is not in view: ${JSON.stringify(box)}`);
  const before = await camera(page);
  let moved = false;
  await recordFrames(page);
  const until = Date.now() + ms;
  let step = 0;
  while (Date.now() < until) {
    const x = box.x + 200 + (step % 7) * 130;
    const y = box.y + 120 + (step % 3) * 120;
    await page.mouse.move(x, y);
    await page.mouse.wheel(0, step % 6 < 3 ? -240 : 240);
    await page.mouse.down();
    await page.mouse.move(x - 120, y + 40, { steps: 6 });
    await page.mouse.up();
    step += 1;
    if (step % 5 === 0) moved ||= (await camera(page)) !== before;
  }
  const stats = frameStats(await takeFrames(page));
  await stopRecording();
  if (!moved && (await camera(page)) === before) throw new Error('pan and zoom did not move the camera');
  return stats;
}

async function setLevel(page, level) {
  const before = await mapAttr(page, 'data-version');
  await page.getByTestId('map-level').selectOption(level);
  await page.waitForFunction((v) => document.querySelector('[data-testid="map"]').dataset.version !== v, before);
  await page.waitForTimeout(500);
  return { boxes: Number(await mapAttr(page, 'data-boxes')), edges: Number(await mapAttr(page, 'data-edges')), layout_ms: Number(await mapAttr(page, 'data-layout-ms')) };
}

const browser = await launchBrowser(['--enable-precise-memory-info']);
const out = { cluster: { pods: truth.pods, pairs: truth.pairs, requests: truth.requests, frames: truth.frames } };
try {
  // 1. The whole capture, then a fresh page.
  const whole = await startPodtap(capture);
  try {
    // The whole capture read (the engine's counters come when the replay has finished).
    for (let i = 0; i < 120; i++) {
      const h = await (await fetch(whole.url + '/healthz')).json();
      if (h.engine?.frames === truth.frames) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.addInitScript((want) => {
      // The first frame at which the map holds every request of the capture: once the map says
      // so (its attributes), the end of the next frame's map drawing — an animation-frame
      // callback asked for now runs after the map's own, which was asked for a frame earlier.
      // (A callback a frame later would also count the work the page does after that frame.)
      const seen = new MutationObserver(() => {
        const m = document.querySelector('[data-testid="map"]');
        if (m && Number(m.dataset.requests) === want && Number(m.dataset.boxes) > 0 && window.__full == null) {
          seen.disconnect();
          requestAnimationFrame(() => { window.__full = performance.now(); });
        }
      });
      document.addEventListener('DOMContentLoaded', () => seen.observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-requests', 'data-boxes'] }));
    }, truth.requests);
    await page.goto(whole.url + '/');
    await page.waitForFunction(() => window.__full != null, null, { timeout: 60000 });
    const first = await page.evaluate(() => ({ full_ms: window.__full, wasm_ready_ms: performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd }));
    out.first_full_map = {
      ms: round(first.full_ms), level: await mapAttr(page, 'data-level'),
      boxes: Number(await mapAttr(page, 'data-boxes')), edges: Number(await mapAttr(page, 'data-edges')),
      layout_ms: Number(await mapAttr(page, 'data-layout-ms')),
    };
    out.pan_zoom_namespaces = await panAndZoom(page, 8000, 'namespaces');
    // Open one namespace: its workloads appear where it was.
    const ns = page.locator('[data-testid="map-node"][data-level="namespace"]').first();
    await page.getByTestId('map-fit').click();
    await page.waitForTimeout(300);
    await recordFrames(page);
    const v = await mapAttr(page, 'data-version');
    await ns.click();
    await page.waitForFunction((x) => document.querySelector('[data-testid="map"]').dataset.version !== x, v);
    await page.waitForTimeout(600);
    out.open_namespace = { layout_ms: Number(await mapAttr(page, 'data-layout-ms')), frames: frameStats(await takeFrames(page)) };
    out.workloads = await setLevel(page, 'workload');
    // Every workload's count against the generator's truth, all in view once fitted (the level
    // keeps the camera on the namespace just opened, and edges out of view have no hooks).
    await page.getByTestId('map-fit').click();
    await page.waitForTimeout(600);
    const into = await page.$$eval('[data-testid="map-edge"]', (els) => {
      const m = {};
      for (const e of els) m[e.dataset.target] = (m[e.dataset.target] ?? 0) + Number(e.dataset.requests);
      return m;
    });
    const wrong = Object.entries(truth.workloads).filter(([id, n]) => into[id] !== n);
    out.workloads.exact = wrong.length === 0;
    out.workloads.wrong = wrong.length;
    out.workloads.first_wrong = wrong.slice(0, 5).map(([id, n]) => ({ id, truth: n, map: into[id] ?? null }));
    out.pan_zoom_workloads = await panAndZoom(page, 8000, 'workloads');
    out.pods = await setLevel(page, 'pod');
    out.pan_zoom_pods = await panAndZoom(page, 8000, 'pods');
    // Focus one pod of the 1,250: the rest dims, its callers and callees stay lit. (After the
    // fit has moved the camera and the edges were drawn afresh at rest.)
    await page.getByTestId('map-fit').click();
    await page.waitForTimeout(1000);
    await recordFrames(page);
    await page.locator('[data-testid="map-node"][data-level="pod"]').first().click();
    await page.getByTestId('map-focus').waitFor();
    await page.waitForTimeout(600);
    out.focus_pod = { frames: frameStats(await takeFrames(page)), id: await page.getByTestId('map-focus').getAttribute('data-id') };
    out.errors = errors;
    await page.close();
  } finally {
    whole.stop();
  }

  // 2. Live: the capture looped in real time.
  const live = await startPodtap([...capture, '--loop', '--realtime']);
  try {
    const page = await browser.context.newPage();
    await page.goto(live.url + '/');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="map"]')?.dataset.edges) > 0, null, { timeout: 60000 });
    await page.waitForTimeout(3000);
    await page.evaluate(() => {
      window.__updates = [];
      const m = document.querySelector('[data-testid="map"]');
      new MutationObserver(() => window.__updates.push(Number(m.dataset.layoutMs))).observe(m, { attributes: true, attributeFilter: ['data-version'] });
      window.__long = [];
      new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({ entryTypes: ['longtask'] });
    });
    await recordFrames(page);
    const heap = () => page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
    const heaps = [await heap()];
    const started = Date.now();
    while (Date.now() - started < secs * 1000) {
      await page.waitForTimeout(5000);
      heaps.push(await heap());
    }
    const frames = await takeFrames(page);
    const { updates, long } = await page.evaluate(() => ({ updates: window.__updates, long: window.__long }));
    out.live = {
      secs, level: await mapAttr(page, 'data-level'), edges: Number(await mapAttr(page, 'data-edges')),
      updates: updates.length, update_ms: { p50: round(pct(updates, 50)), p95: round(pct(updates, 95)), max: round(Math.max(...updates)) },
      frame_ms: frameStats(frames), long_tasks: long.length,
      heap_mb: { start: round(heaps[0] / 1e6), end: round(heaps.at(-1) / 1e6), max: round(Math.max(...heaps) / 1e6) },
    };
    await page.close();
  } finally {
    live.stop();
  }
  console.log(JSON.stringify(out, null, 1));
} finally {
  await browser.close();
}
