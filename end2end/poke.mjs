import { launchBrowser, PodtapPage, startPodtap } from './tests/podtap.page.mjs';
const args = process.argv.slice(2);
const server = await startPodtap(args);
const browser = await launchBrowser();
try {
  const ui = new PodtapPage(await browser.context.newPage());
  ui.page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log('console:', m.text().slice(0, 300)); });
  await ui.open(server.url, process.env.Q ?? '');
  await ui.page.waitForTimeout(Number(process.env.WAIT ?? 6000));
  const lanes = await ui.page.$$eval('[data-testid="timeline-lane"]', (els) => els.map((e) => [e.dataset.conn, e.dataset.requests, e.dataset.src, e.dataset.dst]));
  console.log('lanes', lanes.length, JSON.stringify(lanes.slice(0, 8)));
  console.log('bars', await ui.page.locator('[data-testid="timeline-bar"]').count());
  console.log('rows', await ui.rowCount());
  console.log('edges', (await ui.edges()).length);
  console.log('balance', JSON.stringify(await ui.balance()));
  await ui.page.screenshot({ path: '/tmp/poke/shot.png', fullPage: true });
  console.log('errors', ui.errors);
} finally { await browser.close(); server.stop(); }
