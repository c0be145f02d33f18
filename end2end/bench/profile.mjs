// Sums a Chromium .cpuprofile (PODTAP_PROFILE of browser.mjs or map.mjs) by function: self time
// and total time (the function and what it called, each sample counted once per function), the
// top N of each. With UNDER (a part of a function's name), only the samples taken inside that
// function count: what it spends its time on. Run: node end2end/bench/profile.mjs FILE [N] [UNDER]
import { readFileSync } from 'node:fs';

const profile = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const top = Number(process.argv[3] ?? 30);
const under = process.argv[4];
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => {
  const f = n.callFrame;
  const where = f.url ? ` ${f.url.split('/').pop()}:${f.lineNumber + 1}` : '';
  return (f.functionName || '(anonymous)') + (f.url.endsWith('.wasm') ? '' : where);
};
// Sample durations: timeDeltas[i] is the time before sample i.
const self = new Map();
const total = new Map();
let all = 0;
profile.samples.forEach((id, i) => {
  const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
  if (under) {
    let inside = false;
    for (let at = id; at != null && !inside; at = parent.get(at)) inside = name(nodes.get(at)).includes(under);
    if (!inside) return;
  }
  all += dt;
  const n = nodes.get(id);
  const key = name(n);
  self.set(key, (self.get(key) ?? 0) + dt);
  const seen = new Set();
  for (let at = id; at != null; at = parent.get(at)) {
    const k = name(nodes.get(at));
    if (seen.has(k)) continue;
    seen.add(k);
    total.set(k, (total.get(k) ?? 0) + dt);
  }
});
const show = (title, m) => {
  console.log(`${title} (ms of ${Math.round(all)} ms sampled)`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${v.toFixed(0).padStart(8)} ${((100 * v) / all).toFixed(1).padStart(5)}%  ${k}`);
  }
};
show('self', self);
show('total', total);
