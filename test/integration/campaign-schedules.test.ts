import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { CampaignScheduler } from '../../workers/campaign-scheduler.js';
import { Presence } from '../../src/self/presence.js';

type App = Awaited<ReturnType<typeof newApp>>;
type Mocks = Awaited<ReturnType<typeof startProviderMocks>>;

/** token → what the FCM mock received (the first accepted send of each token). */
function received(mocks: Mocks, prefix: string) {
  const out = new Map<string, { title?: string; body?: string; at: number }>();
  for (const r of mocks.fcm.requests) {
    if (!r.token?.startsWith(prefix) || r.status !== 200 || out.has(r.token)) continue;
    const n = (r.body as { message: { notification?: { title?: string; body?: string } } }).message.notification ?? {};
    out.set(r.token, { ...n, at: r.at });
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('campaigns: schedules, pace, politeness, A/B, control', () => {
  let t: TestRelay;
  let mocks: Mocks;
  let app: App;

  const android = (id: string, extra: Record<string, unknown> = {}) => app.api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'samsung', tokens: { fcm: `fcm-${id}` }, ...extra });
  const get = async (id: string) => (await app.api('GET', `/v1/campaigns/${id}`)).body;
  const create = async (body: Record<string, unknown>) => {
    const r = await app.api('POST', '/v1/campaigns', { notification: { title: 'T', body: 'B' }, ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  };
  const until = <T>(id: string, pred: (c: any) => T | undefined, ms = 20_000, what = 'campaign state') =>
    eventually(async () => pred(await get(id)), ms, `${id}: ${what}`);
  const clock = () => t.relay.ctx.clock;

  before(async () => {
    mocks = await startProviderMocks();
    t = await startTestRelay({ ...mocks.env, CAMPAIGN_TICK: '50ms', CAMPAIGN_LEASE: '3s' });
    app = await newApp(t);
    const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/fcm`, mocks.credentials.fcm);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(async () => {
    clock().set(Date.now());
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  test('localTime: each zone at its own 09:00, a zone already past the late window is missed', async () => {
    const zones = { tokyo: 'Asia/Tokyo', berlin: 'Europe/Berlin', ny: 'America/New_York', auckland: 'Pacific/Auckland' };
    for (const [k, tz] of Object.entries(zones)) await android(`lt-${k}`, { timezone: tz, tags: ['lt'] });
    await android('lt-utc', { tags: ['lt'] });
    clock().set(Date.parse('2026-12-23T23:00:00Z')); // 08:00 in Tokyo; 09:00 in Auckland was 3 h ago
    const id = await create({ name: 'xmas', audience: { tags: { all: ['lt'] } }, schedule: { localTime: '2026-12-24T09:00' } });
    const c = await until(id, (c) => (c.state === 'running' && c.skipped.missed === 1 ? c : undefined), 10_000, 'auckland missed');
    assert.equal(c.audienceSize, 5);
    assert.equal(c.nextRunAt, '2026-12-24T00:00:00.000Z');
    await sleep(300);
    assert.equal(received(mocks, 'fcm-lt-').size, 0, 'nothing before 09:00 anywhere');
    const step = async (iso: string, expect: string[]) => {
      clock().set(Date.parse(iso));
      await eventually(async () => (received(mocks, 'fcm-lt-').size === expect.length ? true : undefined), 10_000, `sends at ${iso}`);
      assert.deepEqual([...received(mocks, 'fcm-lt-').keys()].sort(), expect.map((k) => `fcm-lt-${k}`).sort());
    };
    await step('2026-12-24T00:00:05Z', ['tokyo']);
    await step('2026-12-24T08:00:05Z', ['tokyo', 'berlin']);
    await step('2026-12-24T09:00:05Z', ['tokyo', 'berlin', 'utc']);
    await step('2026-12-24T14:00:05Z', ['tokyo', 'berlin', 'utc', 'ny']);
    const done = await until(id, (c) => (c.state === 'completed' ? c : undefined));
    assert.equal(done.dispatched, 4);
    assert.equal(done.skipped.missed, 1);
    clock().set(Date.now());
  });

  test('at: fires at its time, once, with two schedulers racing for it', async () => {
    // A second scheduler instance on the same database, Redis and clock as the relay's own.
    const ctx = t.relay.ctx;
    const second = new CampaignScheduler(ctx, new Presence(ctx.queues.connection, ctx.config.QUEUE_PREFIX).lookup, { tickMs: 50, leaseMs: 3000 });
    second.start();
    try {
      for (let i = 0; i < 5; i++) await android(`at-${i}`, { tags: ['at'] });
      clock().set(Date.parse('2026-12-24T08:00:00Z'));
      const id = await create({ name: 'at nine', audience: { tags: { all: ['at'] } }, schedule: { at: '2026-12-24T09:00:00Z' } });
      const c = await get(id);
      assert.equal(c.state, 'scheduled');
      assert.equal(c.nextRunAt, '2026-12-24T09:00:00.000Z');
      await sleep(500);
      assert.equal(received(mocks, 'fcm-at-').size, 0, 'nothing before its time');
      assert.equal((await get(id)).state, 'scheduled');
      clock().set(Date.parse('2026-12-24T09:00:01Z'));
      const done = await until(id, (c) => (c.state === 'completed' && c.counts.sent === 5 ? c : undefined), 20_000, 'sent at 09:00');
      assert.equal(done.runs.length, 1, 'one run');
      assert.equal(done.dispatched, 5);
      assert.equal(done.nextRunAt, null);
      await sleep(500);
      const sends = mocks.fcm.requests.filter((r) => r.token?.startsWith('fcm-at-') && r.status === 200);
      assert.equal(sends.length, 5, 'each device once');
      assert.equal((await get(id)).runs.length, 1);
    } finally {
      await second.stop();
      clock().set(Date.now());
    }
  });

  test('cron: a run per tick, each its own message, nextRunAt shown, until honoured', async () => {
    await android('cron-1', { tags: ['cron'] });
    clock().set(Date.parse('2026-12-24T00:30:00Z'));
    const id = await create({ name: 'daily', audience: { tags: { all: ['cron'] } }, schedule: { cron: '0 9 * * *', timezone: 'Asia/Shanghai', until: '2026-12-25T12:00:00Z' } });
    let c = await get(id);
    assert.equal(c.state, 'scheduled');
    assert.equal(c.nextRunAt, '2026-12-24T01:00:00.000Z');
    clock().set(Date.parse('2026-12-24T01:00:02Z'));
    // The next tick is the next day's 09:00 in Shanghai.
    c = await until(id, (c) => (c.runs.length === 1 && c.state === 'scheduled' && c.nextRunAt === '2026-12-25T01:00:00.000Z' ? c : undefined), 10_000, 'first run, next tick');
    assert.equal(c.runs.length, 1);
    clock().set(Date.parse('2026-12-25T01:00:02Z'));
    c = await until(id, (c) => (c.state === 'completed' && c.counts.queued === 0 ? c : undefined), 10_000, 'second run, then done');
    assert.equal(c.runs.length, 2);
    assert.notEqual(c.runs[0].messageId, c.runs[1].messageId);
    assert.equal(c.runs[0].counts.sent, 1);
    assert.equal(c.runs[1].counts.sent, 1);
    assert.equal(c.nextRunAt, null);
    assert.equal(mocks.fcm.requests.filter((r) => r.token === 'fcm-cron-1').length, 2);
    clock().set(Date.now());
  });

  test('throttle: perMinute spread evenly, measured at the provider', async () => {
    for (let i = 0; i < 30; i++) await android(`thr-${String(i).padStart(2, '0')}`, { tags: ['thr'] });
    const id = await create({ name: 'paced', audience: { tags: { all: ['thr'] } }, throttle: { perMinute: 600 } });
    await until(id, (c) => (c.state === 'completed' && c.counts.sent === 30 ? c : undefined), 20_000, 'all sent');
    const times = [...received(mocks, 'fcm-thr-').values()].map((r) => r.at).sort((a, b) => a - b);
    assert.equal(times.length, 30);
    const span = times[29]! - times[0]!;
    // 30 sends at 10/s: about 2.9 s from first to last, never a burst.
    assert.ok(span >= 2400 && span <= 6000, `span ${span} ms`);
    for (let i = 0; i + 15 < times.length; i++) assert.ok(times[i + 15]! - times[i]! >= 1000, `16 sends within ${times[i + 15]! - times[i]!} ms`);
  });

  test('quietHours: a device inside its quiet hours gets it when they end', async () => {
    await android('q-tokyo', { timezone: 'Asia/Tokyo', tags: ['quiet'] });
    await android('q-berlin', { timezone: 'Europe/Berlin', tags: ['quiet'] });
    clock().set(Date.parse('2026-12-24T14:00:00Z')); // 23:00 in Tokyo, 15:00 in Berlin
    const id = await create({ name: 'polite', audience: { tags: { all: ['quiet'] } }, quietHours: { start: '22:00', end: '08:00' } });
    await eventually(async () => (received(mocks, 'fcm-q-').size === 1 ? true : undefined), 10_000, 'berlin sent');
    assert.ok(received(mocks, 'fcm-q-').has('fcm-q-berlin'));
    const c = await get(id);
    assert.equal(c.nextRunAt, '2026-12-24T23:00:00.000Z', '08:00 in Tokyo');
    await sleep(300);
    assert.equal(received(mocks, 'fcm-q-').size, 1);
    clock().set(Date.parse('2026-12-24T23:00:03Z'));
    await eventually(async () => (received(mocks, 'fcm-q-').size === 2 ? true : undefined), 10_000, 'tokyo sent after quiet hours');
    await until(id, (c) => (c.state === 'completed' ? c : undefined));
    clock().set(Date.now());
  });

  test('frequencyCap: counted across the app’s campaigns per device-local day; transactional pushes are never capped', async () => {
    for (let i = 0; i < 3; i++) await android(`cap-${i}`, { tags: ['cap'], timezone: 'Asia/Shanghai' });
    const first = await create({ name: 'first', audience: { tags: { all: ['cap'] } } });
    await until(first, (c) => (c.state === 'completed' && c.counts.sent === 3 ? c : undefined));
    const second = await create({ name: 'second', audience: { tags: { all: ['cap'] } }, frequencyCap: { perDay: 1 } });
    const c = await until(second, (c) => (c.state === 'completed' ? c : undefined));
    assert.equal(c.skipped.capped, 3);
    assert.equal(c.dispatched, 0);
    const push = await app.api('POST', '/v1/push', { to: { tags: { all: ['cap'] } }, notification: { title: 'tx' } });
    assert.equal(push.status, 202);
    await eventually(async () => ((await app.api('GET', `/v1/messages/${push.body.id}`)).body.counts.sent === 3 ? true : undefined), 10_000, 'transactional sent');
    const third = await create({ name: 'third', audience: { tags: { all: ['cap'] } }, frequencyCap: { perDay: 2 } });
    const c3 = await until(third, (c) => (c.state === 'completed' && c.counts.queued === 0 ? c : undefined));
    assert.equal(c3.dispatched, 3, 'the transactional push did not count');
  });

  test('A/B: weighted split, deterministic per device, test slice then the winner to the rest', async () => {
    for (let i = 0; i < 200; i++) await android(`ab-${String(i).padStart(3, '0')}`, { tags: ['ab'] });
    clock().set(Date.now());
    const id = await create({
      name: 'ab',
      audience: { tags: { all: ['ab'] } },
      notification: { title: 'A title', body: 'b' },
      variants: [{ name: 'A', weight: 50 }, { name: 'B', weight: 50, notification: { title: 'B title' } }],
      abTest: { testPercent: 30, metric: 'opened', decideAfter: '1h' },
    });
    const test1 = await until(id, (c) => (c.state === 'running' && c.nextRunAt && c.counts.queued === 0 && c.dispatched > 0 ? c : undefined), 15_000, 'test slice sent');
    // 30 % of 200 = 60 ± sampling noise, split about evenly.
    assert.ok(test1.dispatched >= 35 && test1.dispatched <= 85, `test slice ${test1.dispatched}`);
    const a = test1.variants.find((v: any) => v.name === 'A').dispatched;
    const b = test1.variants.find((v: any) => v.name === 'B').dispatched;
    assert.equal(a + b, test1.dispatched);
    assert.ok(Math.abs(a - b) <= test1.dispatched * 0.5, `A ${a} B ${b}`);
    // Devices that got B open it; the A devices do not.
    const messageId = test1.runs[0].messageId;
    const got = received(mocks, 'fcm-ab-');
    const opensB = [...got].filter(([, m]) => m.title === 'B title').map(([token]) => token.slice(4));
    assert.equal(opensB.length, b);
    const r = await app.api('POST', '/v1/events', { events: opensB.map((deviceId) => ({ deviceId, messageId, event: 'opened' })) });
    assert.equal(r.status, 200);
    clock().advance(3_600_000 + 1000);
    const done = await until(id, (c) => (c.state === 'completed' && c.counts.queued === 0 ? c : undefined), 20_000, 'rest sent');
    assert.equal(done.winner, 'B');
    assert.equal(done.dispatched, 200);
    const all = received(mocks, 'fcm-ab-');
    assert.equal(all.size, 200);
    const bTotal = [...all.values()].filter((m) => m.title === 'B title').length;
    assert.equal(bTotal, 200 - a, 'everyone outside the test slice got the winner');
    assert.ok(done.variants.find((v: any) => v.name === 'B').rates.opened > 0);
    clock().set(Date.now());
  });

  test('pause, resume and cancel take effect mid-dispatch', async () => {
    for (let i = 0; i < 40; i++) await android(`pz-${String(i).padStart(2, '0')}`, { tags: ['pz'] });
    const id = await create({ name: 'pausable', audience: { tags: { all: ['pz'] } }, throttle: { perMinute: 1200 } });
    await until(id, (c) => (c.dispatched >= 5 ? c : undefined), 10_000, 'dispatch started');
    const p = await app.api('POST', `/v1/campaigns/${id}/pause`);
    assert.equal(p.status, 200);
    assert.equal(p.body.state, 'paused');
    await sleep(1000);
    const atPause = (await get(id)).dispatched;
    const sentAtPause = received(mocks, 'fcm-pz-').size;
    await sleep(1500);
    assert.equal((await get(id)).dispatched, atPause, 'nothing dispatched while paused');
    assert.equal(received(mocks, 'fcm-pz-').size, sentAtPause, 'nothing sent while paused');
    assert.ok(atPause < 40);
    const r = await app.api('POST', `/v1/campaigns/${id}/resume`);
    assert.equal(r.body.state, 'running');
    const done = await until(id, (c) => (c.state === 'completed' && c.counts.queued === 0 ? c : undefined), 20_000, 'resumed to the end');
    assert.equal(done.dispatched, 40);
    assert.equal(received(mocks, 'fcm-pz-').size, 40);

    for (let i = 0; i < 40; i++) await android(`cx-${String(i).padStart(2, '0')}`, { tags: ['cx'] });
    const id2 = await create({ name: 'cancellable', audience: { tags: { all: ['cx'] } }, throttle: { perMinute: 1200 } });
    await until(id2, (c) => (c.dispatched >= 5 ? c : undefined), 10_000, 'dispatch started');
    const cx = await app.api('POST', `/v1/campaigns/${id2}/cancel`);
    assert.equal(cx.body.state, 'cancelled');
    await sleep(1000);
    const after1 = await get(id2);
    await sleep(1000);
    const after2 = await get(id2);
    assert.equal(after2.dispatched, after1.dispatched);
    assert.ok(after2.dispatched < 40);
    assert.equal(after2.counts.queued, 0);
    assert.equal(after2.counts.sent + after2.counts.cancelled, after2.dispatched);
    assert.equal((await app.api('POST', `/v1/campaigns/${id2}/resume`)).status, 409);
  });
});
