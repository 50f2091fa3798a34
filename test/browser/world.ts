// One Relay with the APNs mock, an app with four iOS devices, one push with receipts and an open,
// a small A/B campaign run to completion through the API, and a headless Chromium (Debian's
// `chromium`, driven by playwright-core), shared by the browser test files. Screenshots land in
// test-results/browser/ (or SCREENSHOT_DIR).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { chromiumPath } from '../helpers/chromium.js';
import { eventually, newApp, startTestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { mockToken } from '../mocks/apns-server.js';

const OUT = process.env.SCREENSHOT_DIR || join('test-results', 'browser');

export async function startWorld() {
  mkdirSync(OUT, { recursive: true });
  const mocks = await startProviderMocks();
  const t = await startTestRelay({ ...mocks.env, RETRY_BASE_DELAY: '100ms', RETRY_MAX_DELAY: '1s' });
  const app = await newApp(t);
  const cred = await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, mocks.credentials.apns);
  assert.equal(cred.status, 200, JSON.stringify(cred.body));
  const tokens = { ok1: mockToken('ok', 1), ok2: mockToken('ok', 2), ok3: mockToken('ok', 3), dead: mockToken('unregistered', 4) };
  for (const [k, token] of Object.entries(tokens)) {
    const r = await app.api('PUT', `/v1/devices/ios-${k}`, { platform: 'ios', tokens: { apns: token }, tags: ['all'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const push = await app.api('POST', '/v1/push', { to: { tags: { all: ['all'] } }, notification: { title: 'Hello', body: 'from the browser test' } });
  assert.equal(push.status, 202, JSON.stringify(push.body));
  const messageId: string = push.body.id;
  await eventually(async () => ((await app.api('GET', `/v1/messages/${messageId}`)).body.state === 'done' ? true : undefined), 60_000, 'push done');
  const ev = await app.api('POST', '/v1/events', { events: ['ios-ok1', 'ios-ok2'].map((deviceId) => ({ deviceId, messageId, event: 'delivered' })) });
  assert.equal(ev.status, 200, JSON.stringify(ev.body));
  assert.equal((await app.api('POST', '/v1/events', { deviceId: 'ios-ok1', messageId, event: 'opened' })).status, 200);

  // A small campaign through the API: two variants over the three live tokens (the dead one has
  // no channel left), one receipt, so its funnel, rates and per-variant counts are not all zero.
  const cmp = await app.api('POST', '/v1/campaigns', {
    name: 'API A/B',
    audience: { platforms: ['ios'] },
    notification: { title: 'Sale', body: 'Hi {{first_name|there}}' },
    variants: [{ name: 'A', weight: 50 }, { name: 'B', weight: 50, notification: { title: 'Last day' } }],
  });
  assert.equal(cmp.status, 201, JSON.stringify(cmp.body));
  const campaignId: string = cmp.body.id;
  const ran = await eventually(async () => {
    const c = (await app.api('GET', `/v1/campaigns/${campaignId}`)).body;
    return c.state === 'completed' && c.runs?.[0]?.messageId ? c : undefined;
  }, 60_000, 'campaign completed');
  const campaignMessage: string = ran.runs[0].messageId;
  await eventually(async () => ((await app.api('GET', `/v1/messages/${campaignMessage}`)).body.state === 'done' ? true : undefined), 60_000, 'campaign message done');
  const cev = await app.api('POST', '/v1/events', { deviceId: 'ios-ok2', messageId: campaignMessage, event: 'delivered' });
  assert.equal(cev.status, 200, JSON.stringify(cev.body));
  const browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox'] });

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

  /** How far the page scrolls sideways (0: the layout fits the viewport; wide tables scroll inside their own box). */
  const sidewaysOverflow = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

  return {
    t, app, browser, messageId, campaignId, campaignMessage, signedIn, assertNamed, shot, sidewaysOverflow,
    async close() {
      await browser.close();
      await t.stop();
      await t.iso.drop();
      await mocks.close();
    },
  };
}
