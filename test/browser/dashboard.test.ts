// The web dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
// what a user sees must be what the API answers. Screenshots of every page land in
// test-results/browser/ (look at them: a test cannot see that a chart is unreadable).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { chromiumPath } from '../helpers/chromium.js';
import { client, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { mockToken } from '../mocks/apns-server.js';

const OUT = join('test-results', 'browser');

describe('dashboard in Chromium', () => {
  let t: TestRelay;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
  let app: Awaited<ReturnType<typeof newApp>>;
  let browser: Browser;
  let messageId: string;

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    mocks = await startProviderMocks();
    t = await startTestRelay({ ...mocks.env, RETRY_BASE_DELAY: '100ms', RETRY_MAX_DELAY: '1s' });
    app = await newApp(t);
    const cred = await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, mocks.credentials.apns);
    assert.equal(cred.status, 200, JSON.stringify(cred.body));
    const tokens = { ok1: mockToken('ok', 1), ok2: mockToken('ok', 2), ok3: mockToken('ok', 3), dead: mockToken('unregistered', 4) };
    for (const [k, token] of Object.entries(tokens)) {
      const r = await app.api('PUT', `/v1/devices/ios-${k}`, { platform: 'ios', tokens: { apns: token }, tags: ['all'] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const push = await app.api('POST', '/v1/push', { to: { tags: { all: ['all'] } }, notification: { title: 'Hello', body: 'from the browser test' } });
    assert.equal(push.status, 202, JSON.stringify(push.body));
    messageId = push.body.id;
    await eventually(async () => ((await app.api('GET', `/v1/messages/${messageId}`)).body.state === 'done' ? true : undefined), 60_000, 'push done');
    const ev = await app.api('POST', '/v1/events', { events: ['ios-ok1', 'ios-ok2'].map((deviceId) => ({ deviceId, messageId, event: 'delivered' })) });
    assert.equal(ev.status, 200, JSON.stringify(ev.body));
    assert.equal((await app.api('POST', '/v1/events', { deviceId: 'ios-ok1', messageId, event: 'opened' })).status, 200);
    browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox'] });
  });

  after(async () => {
    await browser?.close();
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  /** A fresh tab (empty sessionStorage), signed in with `key` through the login form. */
  async function signedIn(key: string, viewport = { width: 1280, height: 900 }): Promise<{ ctx: BrowserContext; page: Page }> {
    const ctx = await browser.newContext({ viewport });
    const page = await ctx.newPage();
    await page.goto(`${t.base}/dashboard`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    return { ctx, page };
  }

  /** Every control and field on the page has an accessible name, as Chromium's own tree computes it. */
  async function assertNamed(page: Page, where: string) {
    const cdp = await page.context().newCDPSession(page);
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as { nodes: { role?: { value: string }; name?: { value: string }; ignored: boolean }[] };
    const controls = ['button', 'textbox', 'combobox', 'checkbox', 'link', 'spinbutton', 'searchbox', 'progressbar', 'radio'];
    const unnamed = nodes.filter((n) => !n.ignored && controls.includes(n.role?.value ?? '') && !n.name?.value?.trim());
    assert.deepEqual(unnamed.map((n) => n.role?.value), [], `${where}: controls without an accessible name`);
    await cdp.detach();
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });

  test('a wrong key gets a clear message; the key is kept in sessionStorage only', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${t.base}/dashboard`);
    await assertNamed(page, 'login');
    await page.getByLabel('API key').fill('rk_000000000000_wrongwrongwrongwrongwrongwrongwr');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
    await shot(page, 'login-wrong-key');
    await page.getByLabel('API key').fill(app.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('relay.key'), local: localStorage.length, cookies: document.cookie }));
    assert.equal(stored.session, app.key);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookies, '');
    await ctx.close();
  });

  test('overview: the funnel, split and error numbers equal GET /v1/stats for the same range', async () => {
    await eventually(async () => ((await app.api('GET', '/v1/stats?interval=hour')).body?.totals?.sent >= 3 ? true : undefined), 30_000, 'stats');
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const statsReply = page.waitForResponse((r) => r.url().includes('/v1/stats?') && !r.url().includes('groupBy') && r.status() === 200);
    await page.goto(`${t.base}/dashboard`);
    await page.getByLabel('API key').fill(app.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const shown = await statsReply;
    // The same query, asked by the test itself: the page must show exactly these numbers.
    const api = await app.api('GET', new URL(shown.url()).pathname + new URL(shown.url()).search);
    assert.equal(api.status, 200);
    assert.ok(api.body.totals.sent >= 3, JSON.stringify(api.body.totals));
    const pct = (r: number | null) => (r === null ? '–' : `${(r * 100).toFixed(1)} %`);
    const n = (x: number) => new Intl.NumberFormat('en-US').format(x);
    for (const f of ['sent', 'delivered', 'opened', 'failed', 'invalid', 'expired']) {
      await page.getByTestId(`funnel-${f}`).filter({ hasText: new RegExp(`^${n(api.body.totals[f])}$`) }).waitFor({ timeout: 10_000 });
    }
    assert.equal(await page.getByTestId('rate-delivered').textContent(), pct(api.body.rates.delivered));
    assert.equal(await page.getByTestId('rate-opened').textContent(), pct(api.body.rates.opened));
    await page.locator('figure.chart canvas').first().waitFor();
    // Split by channel: the apns row is the API's apns series.
    const q = new URL(shown.url()).searchParams;
    const byChannel = await app.api('GET', `/v1/stats?from=${encodeURIComponent(q.get('from')!)}&to=${encodeURIComponent(q.get('to')!)}&interval=${q.get('interval')}&groupBy=channel`);
    const apns = byChannel.body.series.find((s: any) => s.key.channel === 'apns');
    assert.ok(apns, JSON.stringify(byChannel.body));
    await page.getByTestId('split-apns-sent').filter({ hasText: n(apns.totals.sent) }).waitFor();
    // The dead token's reason is listed under its channel.
    await page.getByTestId('error-apns-Unregistered').waitFor();
    // Live queue depths refresh by themselves.
    await page.getByTestId('queue-apns-waiting').waitFor();
    const queuesAt = await page.locator('#queues-at').textContent();
    await page.waitForResponse((r) => r.url().endsWith('/v1/queues'), { timeout: 10_000 });
    await page.waitForFunction((before) => document.querySelector('#queues-at')?.textContent !== before, queuesAt, { timeout: 10_000 });
    await assertNamed(page, 'overview');
    await shot(page, 'overview');
    await ctx.close();

    const phone = await signedIn(app.key, { width: 390, height: 844 });
    await phone.page.locator('figure.chart canvas').first().waitFor();
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the phone layout scrolls sideways by ${overflow}px`);
    await shot(phone.page, 'overview-phone');
    await phone.ctx.close();
  });

  test('message lookup: counts per state and channel, and the per-token fates', async () => {
    const { ctx, page } = await signedIn(app.key);
    await page.getByRole('link', { name: 'Messages' }).click();
    await page.getByLabel('Message id').fill(messageId);
    await page.getByRole('button', { name: 'Look up' }).click();
    const m = (await app.api('GET', `/v1/messages/${messageId}`)).body;
    await page.getByTestId('message-state').filter({ hasText: m.state }).waitFor();
    assert.equal(await page.getByTestId('message-recipients').textContent(), String(m.recipients));
    for (const s of ['sent', 'delivered', 'opened', 'invalid']) {
      assert.equal(await page.getByTestId(`all-${s}`).textContent(), String(m.counts[s]), s);
      assert.equal(await page.getByTestId(`apns-${s}`).textContent(), String(m.byChannel.apns?.[s] ?? 0), `apns ${s}`);
    }
    const rows = page.locator('table:has(caption:text("Deliveries, page")) tbody tr');
    await eventually(async () => ((await rows.count()) === 4 ? true : undefined), 10_000, 'four fates');
    await page.getByRole('row').filter({ hasText: 'ios-dead' }).filter({ hasText: 'Unregistered' }).waitFor();
    await page.getByLabel('Status').selectOption('invalid');
    await eventually(async () => ((await rows.count()) === 1 ? true : undefined), 10_000, 'filtered to the invalid one');
    await assertNamed(page, 'message');
    await shot(page, 'message');
    await page.getByLabel('Message id').fill('msg_does_not_exist');
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.getByRole('alert').filter({ hasText: 'not found' }).waitFor();
    await ctx.close();
  });

  test('campaigns: create with an audience preview, then Pause and Resume act through the API', async () => {
    const { ctx, page } = await signedIn(app.key);
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('link', { name: 'New campaign' }).click();
    await page.getByLabel('Name').fill('Browser test');
    await page.getByRole('checkbox', { name: 'ios' }).check();
    await page.getByRole('button', { name: 'Preview audience' }).click();
    const preview = await app.api('POST', '/v1/campaigns/preview', { audience: { platforms: ['ios'] } });
    await page.getByTestId('preview-total').filter({ hasText: `${preview.body.total} devices` }).waitFor();
    await page.getByLabel('Title').fill('Winter sale');
    await page.getByLabel('Body').fill('Hi {{first_name|there}}');
    await page.getByLabel('Throttle (per minute)').fill('1');
    await assertNamed(page, 'new campaign');
    await shot(page, 'campaign-new');
    await page.getByRole('button', { name: 'Create campaign' }).click();
    await page.waitForURL(/#\/campaigns\/(?!new$)[^/]+$/);
    const id = decodeURIComponent(page.url().split('/').pop()!);
    const state = async () => {
      const r = await app.api('GET', `/v1/campaigns/${id}`);
      assert.equal(r.status, 200, `${id}: ${JSON.stringify(r.body)}`);
      return r.body.state as string;
    };
    await page.getByTestId('campaign-state').filter({ hasText: /running|scheduled/ }).waitFor();

    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: 'paused' }).waitFor();
    assert.equal(await state(), 'paused');
    await shot(page, 'campaign-paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: /running|scheduled|completed/ }).waitFor();
    assert.match(await state(), /running|scheduled|completed/);
    await assertNamed(page, 'campaign');
    await shot(page, 'campaign');

    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('row').filter({ hasText: 'Browser test' }).waitFor();
    await shot(page, 'campaigns');
    await ctx.close();
    await app.api('POST', `/v1/campaigns/${id}/cancel`, {});
  });

  test('the operator picks any app; /admin/queues is the operator\'s only', async () => {
    const other = await newApp(t);
    const { ctx, page } = await signedIn(t.adminToken);
    const picker = page.getByLabel('App');
    await picker.selectOption(app.appId);
    await page.goto(`${t.base}/dashboard/#/messages/${messageId}`);
    await page.getByTestId('message-recipients').filter({ hasText: '4' }).waitFor();
    // Another app does not see it: the selector scopes every call to the chosen app.
    await page.getByLabel('App').selectOption(other.appId);
    await page.getByRole('alert').filter({ hasText: 'not found' }).waitFor();
    await assertNamed(page, 'operator');
    await ctx.close();

    const anon = await fetch(`${t.base}/admin/queues`);
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic /);
    assert.equal((await client(t.base, app.key)('GET', '/admin/queues')).status, 403);
    assert.equal((await client(t.base, app.key)('GET', '/admin/queues/api/queues')).status, 403);
    const basicKey = await fetch(`${t.base}/admin/queues`, { headers: { authorization: `Basic ${Buffer.from(`x:${app.key}`).toString('base64')}` } });
    assert.equal(basicKey.status, 403);
    assert.equal((await client(t.base, 'adm_wrong')('GET', '/admin/queues')).status, 401);
    assert.equal((await client(t.base, t.adminToken)('GET', '/admin/queues/api/queues')).status, 200);

    const board = await browser.newContext({ httpCredentials: { username: 'operator', password: t.adminToken } });
    const bp = await board.newPage();
    const res = await bp.goto(`${t.base}/admin/queues`);
    assert.equal(res?.status(), 200);
    await bp.getByText('apns', { exact: true }).first().waitFor();
    await shot(bp, 'admin-queues');
    await board.close();
  });

  test('cold load: bytes transferred and time to the first chart', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await ctx.addInitScript((key) => sessionStorage.setItem('relay.key', key), app.key);
    const page = await ctx.newPage();
    await page.goto(`${t.base}/dashboard/`);
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
      };
    });
    await ctx.close();
    // Baseline in the same run (this machine is noisy): Relay's own API docs page (Swagger UI,
    // served from swagger-ui-dist), cold, until its first rendered section.
    const docsCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const docs = await docsCtx.newPage();
    await docs.goto(`${t.base}/docs`);
    await docs.locator('.swagger-ui .opblock').first().waitFor({ timeout: 20_000 });
    const base = await docs.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      const res = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
      return { shownMs: Math.round(performance.now()), pageBytes: nav.transferSize + res.filter((r) => !r.name.includes('openapi.json')).reduce((s, r) => s + r.transferSize, 0) };
    });
    await docsCtx.close();
    console.log(JSON.stringify({ bench: 'dashboard-cold-load', ...m, baseline: { page: '/docs (Swagger UI)', ...base }, bytesRatio: +(m.pageBytes / base.pageBytes).toFixed(3) }));
    assert.ok(m.pageBytes > 0 && m.pageBytes < 200_000, `the dashboard weighs ${m.pageBytes} bytes on the wire`);
  });
});
