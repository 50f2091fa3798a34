// The web dashboard in a real headless Chromium: what a user sees must be what the API answers.
// Screenshots of every page land in test-results/browser/ (look at them: a test cannot see that a
// chart is unreadable).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page, Response } from 'playwright-core';
import { client, eventually, newApp } from '../helpers/harness.js';
import { mockToken } from '../mocks/apns-server.js';
import { startWorld } from './world.js';

const pct = (r: number | null) => (r === null ? '–' : `${(r * 100).toFixed(1)} %`);
const n = (x: number) => new Intl.NumberFormat('en-US').format(x);
const FIELDS = ['sent', 'delivered', 'opened', 'failed', 'invalid', 'expired'] as const;

describe('dashboard in Chromium', () => {
  let w: Awaited<ReturnType<typeof startWorld>>;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.close();
  });

  /** The page's own GET /v1/stats request, asked again by the test: both must show the same numbers. */
  async function sameAsApi(reply: Promise<Response>) {
    const url = new URL((await reply).url());
    const api = await w.app.api('GET', url.pathname + url.search);
    assert.equal(api.status, 200, JSON.stringify(api.body));
    return { q: url.searchParams, body: api.body };
  }
  const statsReply = (page: Page, grouped?: string) =>
    page.waitForResponse((r) => r.url().includes('/v1/stats?') && (grouped ? r.url().includes(`groupBy=${grouped}`) : !r.url().includes('groupBy')) && r.status() === 200);

  test('a wrong key gets a clear message; the key is kept in sessionStorage only', async () => {
    const ctx = await w.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(`${w.t.base}/dashboard`);
    await w.assertNamed(page, 'login');
    await w.shot(page, 'login');
    await page.getByLabel('API key').fill('rk_000000000000_wrongwrongwrongwrongwrongwrongwr');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
    assert.equal(await page.getByLabel('API key').getAttribute('aria-invalid'), 'true');
    await w.shot(page, 'login-wrong-key');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
    // By keyboard alone: type the key, Enter, then Tab to a page and open it.
    await page.getByLabel('API key').fill('');
    await page.getByLabel('API key').focus();
    await page.keyboard.type(w.app.key);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    for (let i = 0; i < 6 && (await page.evaluate(() => document.activeElement?.textContent?.trim())) !== 'Campaigns'; i++) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('link', { name: 'New campaign' }).waitFor();
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('relay.key'), local: localStorage.length, cookies: document.cookie }));
    assert.equal(stored.session, w.app.key);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookies, '');
    // A reload keeps the tab signed in; signing out forgets the key.
    await page.reload();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('relay.key')), null);
    await ctx.close();
  });

  test('overview: funnel, ranges, buckets, splits and error numbers equal GET /v1/stats for the same range', async () => {
    await eventually(async () => ((await w.app.api('GET', '/v1/stats?interval=hour')).body?.totals?.sent >= 6 ? true : undefined), 30_000, 'stats of the push and the campaign');
    const ctx = await w.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const first = statsReply(page);
    const firstSplit = statsReply(page, 'channel');
    await page.goto(`${w.t.base}/dashboard`);
    await page.getByLabel('API key').fill(w.app.key);
    await page.getByRole('button', { name: 'Sign in' }).click();

    const expectFunnel = async (api: { totals: Record<string, number>; rates: { delivered: number | null; opened: number | null } }) => {
      for (const f of FIELDS) await page.getByTestId(`funnel-${f}`).filter({ hasText: new RegExp(`^${n(api.totals[f] ?? 0)}$`) }).waitFor({ timeout: 10_000 });
      await page.getByTestId('rate-delivered').filter({ hasText: pct(api.rates.delivered) }).waitFor({ timeout: 10_000 });
      await page.getByTestId('rate-opened').filter({ hasText: pct(api.rates.opened) }).waitFor({ timeout: 10_000 });
    };
    // The default: the last 24 hours in hour buckets, with the push and the campaign in it.
    const day = await sameAsApi(first);
    assert.equal(day.q.get('interval'), 'hour');
    assert.ok(day.body.totals.sent >= 6, JSON.stringify(day.body.totals));
    await expectFunnel(day.body);
    await page.getByRole('img', { name: 'Sent, delivered and opened per bucket' }).locator('canvas').first().waitFor();
    // The invalid-token trend: the dead token's invalid shows in its own chart.
    assert.ok(day.body.totals.invalid >= 1);
    await page.getByRole('img', { name: 'Invalid tokens, failures and expiries per bucket' }).locator('canvas').first().waitFor();

    // Split by channel, platform, campaign: each row is the API's series for that key.
    const splitRow = async (reply: Promise<Response>, dim: string, key: string) => {
      const { body } = await sameAsApi(reply);
      const s = body.series.find((x: { key: Record<string, string | null> }) => x.key[dim] === key);
      assert.ok(s, `${dim}=${key} in ${JSON.stringify(body.series.map((x: { key: unknown }) => x.key))}`);
      for (const f of FIELDS) await page.getByTestId(`split-${key}-${f}`).filter({ hasText: new RegExp(`^${n(s.totals[f] ?? 0)}$`) }).waitFor({ timeout: 10_000 });
    };
    await splitRow(firstSplit, 'channel', 'apns');
    let reply = statsReply(page, 'platform');
    await page.getByLabel('Split by').selectOption('platform');
    await splitRow(reply, 'platform', 'ios');
    reply = statsReply(page, 'campaign');
    await page.getByLabel('Split by').selectOption('campaign');
    await splitRow(reply, 'campaign', w.campaignId);
    // A campaign is shown by its name, linking to its page; the transactional push has no campaign.
    await page.getByRole('row').filter({ has: page.getByRole('link', { name: 'API A/B' }) }).waitFor();
    await page.getByRole('rowheader', { name: 'no campaign (transactional)' }).waitFor();

    // The dead token's reason is listed under its channel, with the API's count.
    const errs = await w.app.api('GET', `/v1/stats/errors?from=${encodeURIComponent(day.q.get('from')!)}&to=${encodeURIComponent(day.q.get('to')!)}`);
    const unregistered = errs.body.channels.find((c: { channel: string }) => c.channel === 'apns').reasons.find((r: { code: string }) => r.code === 'Unregistered');
    await page.getByTestId('error-apns-Unregistered').filter({ hasText: n(unregistered.count) }).waitFor();
    await w.assertNamed(page, 'overview');

    // Live queue depths refresh by themselves, without a reload.
    await page.getByTestId('queue-apns-waiting').waitFor();
    const queuesAt = await page.locator('#queues-at').textContent();
    await page.waitForResponse((r) => r.url().endsWith('/v1/queues'), { timeout: 10_000 });
    await page.waitForFunction((before) => document.querySelector('#queues-at')?.textContent !== before, queuesAt, { timeout: 10_000 });
    await page.getByLabel('Split by').selectOption('channel');
    await page.getByTestId('split-apns-sent').waitFor();
    await w.shot(page, 'overview');

    // Every range with the bucket it starts with, and the other bucket it offers; Refresh moves the
    // window to now.
    const choices = [['hour', null, 'minute'], ['week', null, 'day'], ['week', 'hour', 'hour'], ['day', null, 'hour'], ['day', 'minute', 'minute'], ['day', 'refresh', 'minute']] as const;
    for (const [range, bucket, interval] of choices) {
      reply = statsReply(page);
      if (bucket === 'refresh') await page.getByRole('button', { name: 'Refresh' }).click();
      else if (bucket) await page.getByLabel('Buckets').selectOption(bucket);
      else await page.getByLabel('Range').selectOption(range);
      const r = await sameAsApi(reply);
      assert.equal(r.q.get('interval'), interval, `${range} ${bucket}`);
      assert.equal(Date.parse(r.q.get('to')!) - Date.parse(r.q.get('from')!), { hour: 3_600_000, day: 86_400_000, week: 7 * 86_400_000 }[range]);
      await expectFunnel(r.body);
      await page.getByRole('img', { name: 'Sent, delivered and opened per bucket' }).waitFor();
    }
    assert.equal(await page.getByRole('alert').count(), 0, 'no API error on the page');
    await ctx.close();
  });

  test('message lookup: counts per state and channel, and the per-token fates, paged', async () => {
    const { ctx, page } = await w.signedIn(w.app.key);
    await page.getByRole('link', { name: 'Messages' }).click();
    await page.getByLabel('Message id').fill(w.messageId);
    await page.getByRole('button', { name: 'Look up' }).click();
    const m = (await w.app.api('GET', `/v1/messages/${w.messageId}`)).body;
    await page.getByTestId('message-state').filter({ hasText: m.state }).waitFor();
    assert.equal(await page.getByTestId('message-recipients').textContent(), String(m.recipients));
    for (const s of ['queued', 'sent', 'delivered', 'opened', 'failed', 'invalid', 'expired', 'cancelled']) {
      assert.equal(await page.getByTestId(`all-${s}`).textContent(), String(m.counts[s] ?? 0), s);
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

    // Paging: twelve more devices, ten fates a page.
    for (let i = 0; i < 12; i++) {
      const r = await w.app.api('PUT', `/v1/devices/bulk-${i}`, { platform: 'ios', tokens: { apns: mockToken('ok', 100 + i) }, tags: ['bulk'] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const push = await w.app.api('POST', '/v1/push', { to: { tags: { all: ['bulk'] } }, notification: { title: 'Paged' } });
    assert.equal(push.status, 202);
    await eventually(async () => ((await w.app.api('GET', `/v1/messages/${push.body.id}`)).body.state === 'done' ? true : undefined), 60_000, 'bulk push done');
    await page.getByLabel('Message id').fill(push.body.id);
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.getByTestId('message-recipients').filter({ hasText: '12' }).waitFor();
    await page.getByLabel('Per page').selectOption('10');
    await page.getByText('Deliveries, page 1 (10 per page)').waitFor();
    await eventually(async () => ((await rows.count()) === 10 ? true : undefined), 10_000, 'first page of ten');
    const devicesOn = async () => (await rows.locator('td:first-child').allTextContents()).sort();
    const page1 = await devicesOn();
    assert.equal(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.getByText('Deliveries, page 2 (10 per page)').waitFor();
    await eventually(async () => ((await rows.count()) === 2 ? true : undefined), 10_000, 'second page of two');
    const page2 = await devicesOn();
    assert.equal(new Set([...page1, ...page2]).size, 12, 'the two pages hold every fate once');
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await eventually(async () => ((await rows.count()) === 10 ? true : undefined), 10_000, 'back to page one');
    assert.deepEqual(await devicesOn(), page1);
    await ctx.close();
  });

  test("a key's scopes decide the pages, its app the data", async () => {
    const op = client(w.t.base, w.t.adminToken);
    const key = await op('POST', `/v1/apps/${w.app.appId}/keys`, { scopes: ['campaigns'] });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const { ctx, page } = await w.signedIn(key.body.key);
    const nav = page.getByRole('navigation', { name: 'Dashboard' });
    await nav.getByRole('link', { name: 'Campaigns' }).waitFor();
    assert.deepEqual(await nav.getByRole('link').allTextContents(), ['Campaigns']);
    await page.getByRole('row').filter({ hasText: 'API A/B' }).waitFor();
    await page.goto(`${w.t.base}/dashboard/#/overview`);
    await page.getByRole('alert').filter({ hasText: 'no scope for this page' }).waitFor();
    await ctx.close();

    // Another app's key does not see this app's message.
    const other = await newApp(w.t);
    const o = await w.signedIn(other.key);
    await o.page.goto(`${w.t.base}/dashboard/#/messages/${w.messageId}`);
    await o.page.getByRole('alert').filter({ hasText: 'not found' }).waitFor();
    await o.ctx.close();
  });
});
