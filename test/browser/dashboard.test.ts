// The web dashboard in a real headless Chromium: what a user sees must be what the API answers.
// Screenshots of every page land in test-results/browser/ (look at them: a test cannot see that a
// chart is unreadable).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../helpers/harness.js';
import { startWorld } from './world.js';

describe('dashboard in Chromium', () => {
  let w: Awaited<ReturnType<typeof startWorld>>;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.close();
  });

  test('a wrong key gets a clear message; the key is kept in sessionStorage only', async () => {
    const ctx = await w.browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${w.t.base}/dashboard`);
    await w.assertNamed(page, 'login');
    await page.getByLabel('API key').fill('rk_000000000000_wrongwrongwrongwrongwrongwrongwr');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
    await w.shot(page, 'login-wrong-key');
    await page.getByLabel('API key').fill(w.app.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('relay.key'), local: localStorage.length, cookies: document.cookie }));
    assert.equal(stored.session, w.app.key);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookies, '');
    await ctx.close();
  });

  test('overview: the funnel, split and error numbers equal GET /v1/stats for the same range', async () => {
    await eventually(async () => ((await w.app.api('GET', '/v1/stats?interval=hour')).body?.totals?.sent >= 3 ? true : undefined), 30_000, 'stats');
    const ctx = await w.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const statsReply = page.waitForResponse((r) => r.url().includes('/v1/stats?') && !r.url().includes('groupBy') && r.status() === 200);
    await page.goto(`${w.t.base}/dashboard`);
    await page.getByLabel('API key').fill(w.app.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const shown = await statsReply;
    // The same query, asked by the test itself: the page must show exactly these numbers.
    const api = await w.app.api('GET', new URL(shown.url()).pathname + new URL(shown.url()).search);
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
    const byChannel = await w.app.api('GET', `/v1/stats?from=${encodeURIComponent(q.get('from')!)}&to=${encodeURIComponent(q.get('to')!)}&interval=${q.get('interval')}&groupBy=channel`);
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
    await w.assertNamed(page, 'overview');
    await w.shot(page, 'overview');
    await ctx.close();

    const phone = await w.signedIn(w.app.key, { width: 390, height: 844 });
    await phone.page.locator('figure.chart canvas').first().waitFor();
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the phone layout scrolls sideways by ${overflow}px`);
    await w.shot(phone.page, 'overview-phone');
    await phone.ctx.close();
  });

  test('message lookup: counts per state and channel, and the per-token fates', async () => {
    const { ctx, page } = await w.signedIn(w.app.key);
    await page.getByRole('link', { name: 'Messages' }).click();
    await page.getByLabel('Message id').fill(w.messageId);
    await page.getByRole('button', { name: 'Look up' }).click();
    const m = (await w.app.api('GET', `/v1/messages/${w.messageId}`)).body;
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
    await w.assertNamed(page, 'message');
    await w.shot(page, 'message');
    await page.getByLabel('Message id').fill('msg_does_not_exist');
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.getByRole('alert').filter({ hasText: 'not found' }).waitFor();
    await ctx.close();
  });

  test('campaigns: create with an audience preview, then Pause and Resume act through the API', async () => {
    const { ctx, page } = await w.signedIn(w.app.key);
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('link', { name: 'New campaign' }).click();
    await page.getByLabel('Name').fill('Browser test');
    await page.getByRole('checkbox', { name: 'ios' }).check();
    await page.getByRole('button', { name: 'Preview audience' }).click();
    const preview = await w.app.api('POST', '/v1/campaigns/preview', { audience: { platforms: ['ios'] } });
    await page.getByTestId('preview-total').filter({ hasText: `${preview.body.total} devices` }).waitFor();
    await page.getByLabel('Title').fill('Winter sale');
    await page.getByLabel('Body').fill('Hi {{first_name|there}}');
    await page.getByLabel('Throttle (per minute)').fill('1');
    await w.assertNamed(page, 'new campaign');
    await w.shot(page, 'campaign-new');
    await page.getByRole('button', { name: 'Create campaign' }).click();
    await page.waitForURL(/#\/campaigns\/(?!new$)[^/]+$/);
    const id = decodeURIComponent(page.url().split('/').pop()!);
    const state = async () => {
      const r = await w.app.api('GET', `/v1/campaigns/${id}`);
      assert.equal(r.status, 200, `${id}: ${JSON.stringify(r.body)}`);
      return r.body.state as string;
    };
    await page.getByTestId('campaign-state').filter({ hasText: /running|scheduled/ }).waitFor();

    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: 'paused' }).waitFor();
    assert.equal(await state(), 'paused');
    await w.shot(page, 'campaign-paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: /running|scheduled|completed/ }).waitFor();
    assert.match(await state(), /running|scheduled|completed/);
    await w.assertNamed(page, 'campaign');
    await w.shot(page, 'campaign');

    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('row').filter({ hasText: 'Browser test' }).waitFor();
    await w.shot(page, 'campaigns');
    await ctx.close();
    await w.app.api('POST', `/v1/campaigns/${id}/cancel`, {});
  });

});
