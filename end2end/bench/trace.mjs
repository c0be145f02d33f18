// Sums a Chromium timeline trace (`PODTAP_TRACE=FILE cargo xtask bench-browser …`) by event name
// on the page's main thread: where the browser's own time goes (style, layout, paint, tasks),
// which a CPU profile shows only as "(program)". Nested events count in each of their parents,
// so read the figures as totals, not shares of one whole.
// Run: node end2end/bench/trace.mjs FILE [N]
import { readFileSync } from 'node:fs';

const [file, top = '30'] = process.argv.slice(2);
const trace = JSON.parse(readFileSync(file, 'utf8'));
const events = Array.isArray(trace) ? trace : trace.traceEvents;
const main = new Set(
  events.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`),
);
const sums = new Map();
let first = Infinity;
let last = 0;
for (const e of events) {
  if (e.ph !== 'X' || !main.has(`${e.pid}:${e.tid}`) || e.dur == null) continue;
  first = Math.min(first, e.ts);
  last = Math.max(last, e.ts + e.dur);
  const s = sums.get(e.name) ?? { ms: 0, n: 0, max: 0 };
  s.ms += e.dur / 1000;
  s.n += 1;
  s.max = Math.max(s.max, e.dur / 1000);
  sums.set(e.name, s);
}
const span = (last - first) / 1000;
console.log(`main thread, ${Math.round(span)} ms traced (ms in all, share of the span, count, longest ms)`);
for (const [name, s] of [...sums].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(top))) {
  const share = ((100 * s.ms) / span).toFixed(1).padStart(5);
  console.log(`${Math.round(s.ms).toString().padStart(8)} ${share}% ${String(s.n).padStart(7)} ${s.max.toFixed(1).padStart(7)}  ${name}`);
}
