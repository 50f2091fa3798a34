// The dashboard's campaign pages in Chromium (list, A/B page, create form, Pause / Resume / Cancel
// through the API), and every page at phone width. Screenshots land in test-results/browser/.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startWorld } from './world.js';

const pct = (r: number | null | undefined) => (r === null || r === undefined ? '–' : `${(r * 100).toFixed(1)} %`);
const STATUSES = ['queued', 'sent', 'delivered', 'opened', 'failed', 'invalid', 'expired', 'cancelled'] as const;

describe('dashboard campaigns in Chromium', () => {
  let w: Awaited<ReturnType<typeof startWorld>>;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.close();
  });

  test('the list and the A/B campaign page show what GET /v1/campaigns answers', async () => {
    const { ctx, page } = await w.signedIn(w.app.key);
    await page.getByRole('link', { name: 'Campaigns' }).click();
    const c = (await w.app.api('GET', `/v1/campaigns/${w.campaignId}`)).body;
    const listed = (await w.app.api('GET', '/v1/campaigns')).body.items.find((x: { id: string }) => x.id === w.campaignId);
    assert.ok(listed, 'the API lists the campaign');
    const cell = (what: string) => page.getByTestId(`campaign-${w.campaignId}-${what}`);
    await cell('state').filter({ hasText: listed.state }).waitFor();
    assert.equal((await cell('progress').textContent())?.trim(), `${listed.dispatched} / ${listed.audienceSize}`);
    assert.equal(await cell('rate-delivered').textContent(), pct(listed.rates.delivered));
    assert.equal(await cell('rate-opened').textContent(), pct(listed.rates.opened));
    await w.assertNamed(page, 'campaigns');

    await page.getByRole('link', { name: 'API A/B' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: 'completed' }).waitFor();
    assert.equal((await page.getByTestId('campaign-dispatched').textContent())?.trim(), `${c.dispatched} / ${c.audienceSize}`);
    assert.equal(await page.getByTestId('campaign-rate-delivered').textContent(), pct(c.rates.delivered));
    assert.equal(await page.getByTestId('campaign-rate-opened').textContent(), pct(c.rates.opened));
    assert.equal(c.variants.length, 2);
    for (const v of c.variants) {
      for (const s of STATUSES) assert.equal(await page.getByTestId(`${v.name}-${s}`).textContent(), String(v.counts?.[s] ?? 0), `${v.name} ${s}`);
      assert.equal(await page.getByTestId(`${v.name}-rate`).textContent(), pct(v.rates?.delivered), `${v.name} rate`);
      assert.equal(await page.getByTestId(`variant-${v.name}-dispatched`).textContent(), String(v.dispatched));
      assert.equal(await page.getByTestId(`variant-${v.name}-rate-delivered`).textContent(), pct(v.rates?.delivered));
      assert.equal(await page.getByTestId(`variant-${v.name}-rate-opened`).textContent(), pct(v.rates?.opened));
    }
    for (const s of STATUSES) assert.equal(await page.getByTestId(`all-${s}`).textContent(), String(c.counts[s] ?? 0), `all ${s}`);
    // A completed campaign has nothing left to control.
    for (const b of ['Pause', 'Resume', 'Cancel']) assert.equal(await page.getByRole('button', { name: b }).isDisabled(), true, b);
    await w.assertNamed(page, 'campaign');
    await w.shot(page, 'campaign');
    await ctx.close();
  });

  test('create with an audience preview, then Pause, Resume and Cancel act through the API', async () => {
    const { ctx, page } = await w.signedIn(w.app.key);
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('link', { name: 'New campaign' }).click();
    await page.getByLabel('Name').fill('Browser test');
    await page.getByRole('checkbox', { name: 'ios' }).check();
    await page.getByRole('button', { name: 'Preview audience' }).click();
    const preview = await w.app.api('POST', '/v1/campaigns/preview', { audience: { platforms: ['ios'] } });
    await page.getByTestId('preview-total').filter({ hasText: `${preview.body.total} devices` }).waitFor();
    await page.getByTestId('preview-split').filter({ hasText: `ios ${preview.body.byPlatform.ios}` }).waitFor();
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

    // Open it from the list, as a marketer would.
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('row').filter({ hasText: 'Browser test' }).waitFor();
    await w.shot(page, 'campaigns');
    await page.getByRole('link', { name: 'Browser test' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: /running|scheduled/ }).waitFor();

    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: 'paused' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'Campaign paused.' }).waitFor();
    assert.equal(await state(), 'paused');
    assert.equal(await page.getByRole('button', { name: 'Pause' }).isDisabled(), true);
    await w.shot(page, 'campaign-paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByTestId('campaign-state').filter({ hasText: /running|scheduled|completed/ }).waitFor();
    assert.match(await state(), /running|scheduled|completed/);

    // Cancel asks first; a dismissed question changes nothing.
    page.once('dialog', (d) => void d.dismiss());
    await page.getByRole('button', { name: 'Cancel' }).click();
    assert.match(await state(), /running|scheduled|completed/);
    if ((await state()) !== 'completed') {
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('button', { name: 'Cancel' }).click();
      await page.getByTestId('campaign-state').filter({ hasText: 'cancelled' }).waitFor();
      assert.equal(await state(), 'cancelled');
      for (const b of ['Pause', 'Resume', 'Cancel']) assert.equal(await page.getByRole('button', { name: b }).isDisabled(), true, b);
    }
    await ctx.close();
  });

  test('every page fits a phone (390 × 844) without scrolling sideways', async () => {
    const { ctx, page } = await w.signedIn(w.app.key, { width: 390, height: 844 });
    const pages: [string, string, () => Promise<void>][] = [
      ['overview', '#/overview', () => page.locator('figure.chart canvas').first().waitFor()],
      ['campaigns', '#/campaigns', () => page.getByRole('row').filter({ hasText: 'API A/B' }).waitFor()],
      ['campaign', `#/campaigns/${w.campaignId}`, () => page.getByTestId('A-sent').waitFor()],
      ['campaign-new', '#/campaigns/new', () => page.getByLabel('Name').waitFor()],
      ['message', `#/messages/${w.messageId}`, () => page.getByRole('row').filter({ hasText: 'ios-dead' }).waitFor()],
    ];
    for (const [name, hash, ready] of pages) {
      await page.goto(`${w.t.base}/dashboard/${hash}`);
      await ready();
      const overflow = await w.sidewaysOverflow(page);
      assert.ok(overflow <= 0, `${name}: the phone layout scrolls sideways by ${overflow} px`);
      await w.shot(page, `${name}-phone`);
    }
    await ctx.close();
  });
});
