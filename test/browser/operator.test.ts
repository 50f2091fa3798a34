// The dashboard for the operator (every app, Bull Board) and its cold-load figures, in Chromium.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { client, newApp } from '../helpers/harness.js';
import { startWorld } from './world.js';

describe('dashboard for the operator, and its weight', () => {
  let w: Awaited<ReturnType<typeof startWorld>>;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.close();
  });

  test('the operator picks any app; /admin/queues is the operator\'s only', async () => {
    const other = await newApp(w.t);
    const { ctx, page } = await w.signedIn(w.t.adminToken);
    const picker = page.getByLabel('App');
    await picker.selectOption(w.app.appId);
    await page.goto(`${w.t.base}/dashboard/#/messages/${w.messageId}`);
    await page.getByTestId('message-recipients').filter({ hasText: '4' }).waitFor();
    // Another app does not see it: the selector scopes every call to the chosen app.
    await page.getByLabel('App').selectOption(other.appId);
    await page.getByRole('alert').filter({ hasText: 'not found' }).waitFor();
    await w.assertNamed(page, 'operator');
    await ctx.close();

    const anon = await fetch(`${w.t.base}/admin/queues`);
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic /);
    assert.equal((await client(w.t.base, w.app.key)('GET', '/admin/queues')).status, 403);
    assert.equal((await client(w.t.base, w.app.key)('GET', '/admin/queues/api/queues')).status, 403);
    const basicKey = await fetch(`${w.t.base}/admin/queues`, { headers: { authorization: `Basic ${Buffer.from(`x:${w.app.key}`).toString('base64')}` } });
    assert.equal(basicKey.status, 403);
    assert.equal((await client(w.t.base, 'adm_wrong')('GET', '/admin/queues')).status, 401);
    assert.equal((await client(w.t.base, w.t.adminToken)('GET', '/admin/queues/api/queues')).status, 200);

    const board = await w.browser.newContext({ httpCredentials: { username: 'operator', password: w.t.adminToken } });
    const bp = await board.newPage();
    const res = await bp.goto(`${w.t.base}/admin/queues`);
    assert.equal(res?.status(), 200);
    await bp.getByText('apns', { exact: true }).first().waitFor();
    // The board's overview loads after its menu: shoot it once the queues' cards are drawn.
    await bp.getByText('Loading', { exact: false }).first().waitFor({ state: 'hidden', timeout: 20_000 });
    await w.shot(bp, 'admin-queues');
    await board.close();
  });

  test('cold load: bytes transferred and time to the first chart', async () => {
    const ctx = await w.browser.newContext({ viewport: { width: 1280, height: 900 } });
    await ctx.addInitScript((key) => sessionStorage.setItem('relay.key', key), w.app.key);
    const page = await ctx.newPage();
    await page.goto(`${w.t.base}/dashboard/`);
    await page.waitForFunction(() => performance.getEntriesByName('relay:first-chart').length > 0, undefined, { timeout: 20_000 });
    const m = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      const res = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
      const assets = res.filter((r) => r.name.includes('/dashboard/'));
      return {
        firstChartMs: Math.round(performance.getEntriesByName('relay:first-chart')[0]!.startTime),
        domContentLoadedMs: Math.round(nav.domContentLoadedEventEnd),
        pageBytes: nav.transferSize + assets.reduce((s, r) => s + r.transferSize, 0),
        assetBytesDecoded: nav.decodedBodySize + assets.reduce((s, r) => s + r.decodedBodySize, 0),
        apiBytes: res.filter((r) => r.name.includes('/v1/')).reduce((s, r) => s + r.transferSize, 0),
        requests: res.length + 1,
        elsewhere: res.map((r) => r.name).filter((u) => new URL(u).origin !== location.origin),
      };
    });
    await ctx.close();
    // Baseline in the same run (this machine is noisy): Relay's own API docs page (Swagger UI,
    // served from swagger-ui-dist), cold, until its first rendered section.
    const docsCtx = await w.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const docs = await docsCtx.newPage();
    await docs.goto(`${w.t.base}/docs`);
    await docs.locator('.swagger-ui .opblock').first().waitFor({ timeout: 20_000 });
    const base = await docs.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      const res = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
      return { shownMs: Math.round(performance.now()), pageBytes: nav.transferSize + res.filter((r) => !r.name.includes('openapi.json')).reduce((s, r) => s + r.transferSize, 0) };
    });
    await docsCtx.close();
    console.log(JSON.stringify({ bench: 'dashboard-cold-load', ...m, elsewhere: m.elsewhere.length, baseline: { page: '/docs (Swagger UI)', ...base }, bytesRatio: +(m.pageBytes / base.pageBytes).toFixed(3) }));
    assert.ok(m.pageBytes > 0 && m.pageBytes < 200_000, `the dashboard weighs ${m.pageBytes} bytes on the wire`);
    assert.deepEqual(m.elsewhere, [], 'the dashboard loads nothing from another origin (no CDN)');
  });
});
