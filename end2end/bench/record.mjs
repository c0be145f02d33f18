// What the benches can record of a page while they measure it, asked for by environment:
// PODTAP_PROFILE=FILE, Chromium's CPU profiler (a .cpuprofile; `node end2end/bench/profile.mjs
// FILE` sums it by function; a build with PODTAP_WASM_NAMES=1 names the app's functions), and
// PODTAP_TRACE=FILE, its timeline trace (style, layout, paint, tasks: what a profile shows only as
// "(program)"; `node end2end/bench/trace.mjs FILE` sums the page's main thread by event).
import { writeFileSync } from 'node:fs';

/** Starts what the environment asks for on `page`; returns `stop()`, which writes each file.
 * `suffix` goes before each file's extension (one bench records several parts). */
export async function record(page, suffix = '') {
  const name = (file) => (suffix ? file.replace(/(\.[^./]+)?$/, (ext) => `-${suffix}${ext}`) : file);
  const profileTo = process.env.PODTAP_PROFILE && name(process.env.PODTAP_PROFILE);
  const traceTo = process.env.PODTAP_TRACE && name(process.env.PODTAP_TRACE);
  const cdp = profileTo || traceTo ? await page.context().newCDPSession(page) : null;
  if (profileTo) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
    await cdp.send('Profiler.start');
  }
  if (traceTo) {
    await cdp.send('Tracing.start', {
      categories: 'devtools.timeline,disabled-by-default-devtools.timeline',
      transferMode: 'ReturnAsStream',
    });
  }
  return async () => {
    if (profileTo) writeFileSync(profileTo, JSON.stringify((await cdp.send('Profiler.stop')).profile));
    if (traceTo) {
      const complete = new Promise((done) => cdp.once('Tracing.tracingComplete', done));
      await cdp.send('Tracing.end');
      const { stream } = await complete;
      const parts = [];
      for (;;) {
        const { data, eof, base64Encoded } = await cdp.send('IO.read', { handle: stream, size: 1 << 20 });
        parts.push(base64Encoded ? Buffer.from(data, 'base64').toString() : data);
        if (eof) break;
      }
      await cdp.send('IO.close', { handle: stream });
      writeFileSync(traceTo, parts.join(''));
    }
  };
}
