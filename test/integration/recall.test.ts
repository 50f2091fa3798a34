/**
 * Recall end to end through the REST API (docs/recall.md): `DELETE /v1/messages/:id` and the
 * per-delivery report of `GET /v1/messages/:id/recall`, against real Redis / PostgreSQL, the
 * in-process gateway with the device SDK over real MQTT, and the APNs / FCM mocks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryStore, RelayDevice, type RelayMessage } from '../../sdk/src/index.js';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { startHuaweiMock, type HuaweiMock } from '../mocks/vendors/huawei.js';
import { startWebPushMock, type WebPushMock } from '../mocks/webpush-server.js';
import { startXiaomiMock, type XiaomiMock } from '../mocks/vendors/xiaomi.js';
import type { SelfInfo } from '../helpers/self-devices.js';

type App = Awaited<ReturnType<typeof newApp>>;

describe('recall: DELETE /v1/messages/:id and GET /v1/messages/:id/recall', () => {
  let t: TestRelay;
  let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
  let xiaomi: XiaomiMock;
  let huawei: HuaweiMock;
  let webpush: WebPushMock;
  let app: App;
  const devices: RelayDevice[] = [];

  before(async () => {
    [mocks, xiaomi, huawei, webpush] = await Promise.all([startProviderMocks(), startXiaomiMock(), startHuaweiMock(), startWebPushMock()]);
    t = await startTestRelay({
      ...mocks.env, XIAOMI_ENDPOINT: xiaomi.url, HUAWEI_ENDPOINT: huawei.url, HUAWEI_OAUTH_ENDPOINT: huawei.url, SELF_ACK_TIMEOUT: '30s',
    });
    app = await newApp(t);
    const creds = {
      ...mocks.credentials,
      xiaomi: { appSecret: xiaomi.appSecret, packageName: xiaomi.packageName },
      huawei: { appId: huawei.appId, clientSecret: huawei.clientSecret },
      webpush: { subject: 'mailto:ops@example.com' },
    };
    for (const [p, body] of Object.entries(creds)) {
      const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/${p}`, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
    await t?.stop();
    await t?.iso.drop();
    await Promise.all([mocks?.close(), xiaomi?.close(), huawei?.close(), webpush?.close()]);
  });

  async function register(id: string, body: Record<string, unknown>): Promise<SelfInfo> {
    const r = await app.api('PUT', `/v1/devices/${id}`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.self as SelfInfo;
  }

  /** The device SDK over real MQTT, with a notification surface that records what is on screen. */
  async function sdkDevice(id: string, self: SelfInfo, store = new MemoryStore(), screen = new Map<string, RelayMessage>()) {
    const dev = new RelayDevice({
      url: self.mqtt,
      deviceId: id,
      password: self.password,
      store,
      reconnect: { minSec: 0.05, maxSec: 0.5 },
      notifications: { show: (m) => void screen.set(m.id, m), remove: (mid) => void screen.delete(mid) },
    });
    devices.push(dev);
    await dev.connect();
    await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, id)) ? true : undefined), 10_000, `${id} online`);
    return { dev, screen, store };
  }

  async function push(body: Record<string, unknown>): Promise<string> {
    const r = await app.api('POST', '/v1/push', body);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.id as string;
  }

  async function untilMessage(id: string, pred: (m: any) => boolean, what: string) {
    return eventually(async () => {
      const m = (await app.api('GET', `/v1/messages/${id}`)).body;
      return pred(m) ? m : undefined;
    }, 20_000, what);
  }

  async function report(id: string, query = '') {
    const r = await app.api('GET', `/v1/messages/${id}/recall?limit=1000${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  }

  async function untilRecall(id: string, pred: (r: any) => boolean, what: string) {
    return eventually(async () => {
      const r = await report(id);
      return pred(r) ? r : undefined;
    }, 20_000, what);
  }

  const byDevice = (items: any[]) => Object.fromEntries(items.map((i) => [i.deviceId, i]));

  test('per-token report across channels: self withdrawn (the SDK removed it), APNs and FCM replaced by collapse id / tag; a repeated DELETE changes nothing', async () => {
    await register('x-ios', { platform: 'ios', tokens: { apns: 'a1'.repeat(32) } });
    await register('x-fcm', { platform: 'android', brand: 'samsung', tokens: { fcm: 'fcm-x-1' } });
    const selfInfo = await register('x-self', { platform: 'android', brand: 'samsung' });
    const { screen } = await sdkDevice('x-self', selfInfo);

    const id = await push({
      to: { devices: ['x-ios', 'x-fcm', 'x-self'] },
      notification: { title: 'Order 42', body: 'shipped' },
      options: { collapseKey: 'order-42' },
      overrides: { fcm: { android: { notification: { tag: 'order-42' } } } },
    });
    await untilMessage(id, (m) => m.counts.sent + m.counts.delivered === 3 && m.counts.delivered >= 1, 'all three sent, the self copy acked');
    await eventually(async () => (screen.has(id) ? true : undefined), 10_000, 'shown by the SDK');
    const apnsBefore = mocks.apns.requests.filter((r) => r.token === 'a1'.repeat(32)).length;
    const fcmBefore = mocks.fcm.requests.filter((r) => r.token === 'fcm-x-1').length;

    const del = await app.api('DELETE', `/v1/messages/${id}`);
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.ok(['running', 'done'].includes(del.body.recall.state));

    const done = await untilRecall(id, (r) => r.state === 'done' && r.totals.pending === 0, 'the recall done');
    assert.deepEqual(done.totals, { pending: 0, cancelled: 0, withdrawn: 1, replaced: 2, not_withdrawable: 0 });
    const items = byDevice(done.items);
    assert.equal(items['x-self'].state, 'withdrawn');
    assert.equal(items['x-self'].channel, 'self');
    assert.equal(items['x-ios'].state, 'replaced');
    assert.equal(items['x-fcm'].state, 'replaced');
    assert.notEqual(items['x-fcm'].token, 'fcm-x-1', 'tokens are masked');
    assert.equal(screen.has(id), false, 'the SDK removed the shown notification');

    // The replacements, as the mocks saw them.
    const apns = mocks.apns.requests.filter((r) => r.token === 'a1'.repeat(32));
    assert.equal(apns.length, apnsBefore + 1, 'one replacement to APNs');
    const rep = apns[apns.length - 1]!;
    assert.equal(rep.headers['apns-collapse-id'], 'order-42');
    assert.equal((rep.payload as any).relay_id, id);
    assert.equal((rep.payload as any).relay_type, 'revoke');
    const fcm = mocks.fcm.requests.filter((r) => r.token === 'fcm-x-1');
    assert.equal(fcm.length, fcmBefore + 1, 'one replacement to FCM');
    const msg = (fcm[fcm.length - 1]!.body as any).message;
    assert.equal(msg.android.notification.tag, 'order-42');
    assert.equal(msg.data.relay_id, id);
    assert.equal(msg.data.relay_type, 'revoke');

    // Idempotent: a second DELETE answers the same report and calls no provider again.
    const again = await app.api('DELETE', `/v1/messages/${id}`);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.recall, { state: 'done', totals: done.totals });
    await t.relay.sweeper?.sweep();
    assert.equal(mocks.apns.requests.filter((r) => r.token === 'a1'.repeat(32)).length, apnsBefore + 1);
    assert.equal(mocks.fcm.requests.filter((r) => r.token === 'fcm-x-1').length, fcmBefore + 1);

    // Cursor paging and filters.
    const page1 = await app.api('GET', `/v1/messages/${id}/recall?limit=2`);
    assert.equal(page1.body.items.length, 2);
    assert.ok(page1.body.next);
    const page2 = await app.api('GET', `/v1/messages/${id}/recall?limit=2&cursor=${page1.body.next}`);
    assert.equal(page2.body.items.length, 1);
    assert.equal(page2.body.next, null);
    // Past a bigint: a 400, not the 500 of a failed cast.
    assert.equal((await app.api('GET', `/v1/messages/${id}/recall?cursor=9999999999999999999`)).status, 400);
    assert.equal((await app.api('GET', `/v1/messages/${id}/deliveries?cursor=9999999999999999999`)).status, 400);
    const replaced = await report(id, '&state=replaced&channel=apns');
    assert.deepEqual(replaced.items.map((i: any) => i.deviceId), ['x-ios']);
  });

  test('vendors: the Xiaomi revoke API reaches its mock exactly once (withdrawn); Huawei is replaced by its notify id / tag', async () => {
    await register('v-xm', { platform: 'android', brand: 'xiaomi', tokens: { xiaomi: 'xm-regid-r1' } });
    await register('v-hw', { platform: 'android', brand: 'huawei', tokens: { huawei: 'hw-token-r1' } });
    const id = await push({ to: { devices: ['v-xm', 'v-hw'] }, notification: { title: 'Flash sale', body: 'now' }, options: { collapseKey: 'news-7' } });
    await untilMessage(id, (m) => m.counts.sent === 2, 'both sent');
    const sentXm = xiaomi.sends.find((r) => r.regIds.includes('xm-regid-r1'))!;
    const sentHw = huawei.sends.find((r) => r.tokens.includes('hw-token-r1'))!;
    const hwCount = huawei.sends.length;

    await app.api('DELETE', `/v1/messages/${id}`);
    const done = await untilRecall(id, (r) => r.state === 'done', 'done');
    const items = byDevice(done.items);
    assert.equal(items['v-xm'].state, 'withdrawn');
    assert.equal(items['v-hw'].state, 'replaced');
    assert.deepEqual(xiaomi.revokes.map(({ at: _at, ...r }) => r), [{ regIds: ['xm-regid-r1'], notifyId: Number(sentXm.fields.notify_id) }]);
    assert.equal(huawei.sends.length, hwCount + 1, 'one replacement to Huawei');
    const hwOriginal = (sentHw.body as any).message.android.notification;
    const hwReplacement = (huawei.sends.at(-1)!.body as any).message;
    assert.equal(hwReplacement.android.notification.notify_id, hwOriginal.notify_id);
    assert.equal(hwReplacement.android.notification.tag, hwOriginal.tag);
    assert.equal(JSON.parse(hwReplacement.data).relay_type, 'revoke');

    await app.api('DELETE', `/v1/messages/${id}`);
    await t.relay.sweeper!.sweep();
    assert.equal(xiaomi.revokes.length, 1, 'a repeated DELETE does not revoke again');
  });

  test('Web Push: replaced by a notification with the same tag, carrying relay_type revoke', async () => {
    const sub = webpush.subscribe();
    await register('w-web', { platform: 'web', tokens: { webpush: JSON.parse(sub.json) } });
    const id = await push({ to: { devices: ['w-web'] }, notification: { title: 'Chat', body: 'hi' }, overrides: { webpush: { notification: { tag: 'chat-9' } } } });
    await untilMessage(id, (m) => m.counts.sent === 1, 'sent');
    const before = webpush.requests.length;
    await app.api('DELETE', `/v1/messages/${id}`);
    const done = await untilRecall(id, (r) => r.state === 'done', 'done');
    assert.deepEqual(done.items.map((i: any) => [i.deviceId, i.state]), [['w-web', 'replaced']]);
    assert.equal(webpush.requests.length, before + 1);
    const rep = webpush.requests.at(-1)!;
    assert.equal(rep.status, 201, rep.error);
    const body = JSON.parse(rep.plaintext!);
    assert.equal(body.id, id);
    assert.equal(body.notification.tag, 'chat-9');
    assert.equal(body.data.relay_type, 'revoke');
  });

  test('not_withdrawable with the reason where no collapse id / tag was sent; cancelled for what was never sent', async () => {
    await register('n-ios', { platform: 'ios', tokens: { apns: 'b2'.repeat(32) } });
    await register('n-fcm', { platform: 'android', brand: 'samsung', tokens: { fcm: 'fcm-n-1' } });
    const id = await push({ to: { devices: ['n-ios', 'n-fcm'] }, notification: { title: 'Plain', body: 'no collapse key' } });
    await untilMessage(id, (m) => m.counts.sent === 2, 'both sent');
    const apnsBefore = mocks.apns.requests.length;
    await app.api('DELETE', `/v1/messages/${id}`);
    const done = await untilRecall(id, (r) => r.state === 'done', 'done');
    const items = byDevice(done.items);
    assert.equal(items['n-ios'].state, 'not_withdrawable');
    assert.equal(items['n-ios'].reason.code, 'no_collapse_id');
    assert.equal(items['n-fcm'].state, 'not_withdrawable');
    assert.equal(items['n-fcm'].reason.code, 'no_tag');
    assert.equal(mocks.apns.requests.length, apnsBefore, 'nothing was sent for them');

    // Scheduled an hour ahead: nothing was sent, every delivery (once routed) is cancelled.
    const later = await push({ to: { devices: ['n-ios', 'n-fcm'] }, notification: { title: 'Later' }, options: { sendAt: new Date(Date.now() + 3_600_000).toISOString() } });
    const del = await app.api('DELETE', `/v1/messages/${later}`);
    assert.equal(del.body.state, 'cancelled');
    const rep = await untilRecall(later, (r) => r.state === 'done', 'done');
    assert.equal(rep.items.length, 0, 'never routed: no delivery exists to withdraw');

    // Routed to no channel (none pinned is available): it failed before any send, so it is cancelled.
    const nowhere = await push({ to: { devices: ['n-fcm'] }, notification: { title: 'Q' }, options: { channels: ['webpush'] } });
    await untilMessage(nowhere, (m) => m.counts.failed === 1, 'failed: no channel');
    await app.api('DELETE', `/v1/messages/${nowhere}`);
    const q = await untilRecall(nowhere, (r) => r.state === 'done', 'done');
    assert.equal(q.items.length, 1);
    assert.equal(q.items[0].state, 'cancelled');
    assert.equal(q.items[0].reason.code, 'not_delivered');

    // Tried once, then held for a retry (the vendor said: not before an hour): never sent, so cancelled.
    xiaomi.setBehavior({ tokens: { 'xm-held-1': 'rateLimit' }, retryAfterSec: 3600 });
    await register('n-held', { platform: 'android', brand: 'xiaomi', tokens: { xiaomi: 'xm-held-1' } });
    const held = await push({ to: { devices: ['n-held'] }, notification: { title: 'Held', body: 'b' } });
    await eventually(async () => {
      const d = (await app.api('GET', `/v1/messages/${held}/deliveries`)).body.items[0];
      return d?.status === 'queued' && d.attempts === 1 ? d : undefined;
    }, 20_000, 'attempted once, queued for a retry');
    const revokesBefore = xiaomi.revokes.length;
    const heldDel = await app.api('DELETE', `/v1/messages/${held}`);
    assert.equal(heldDel.body.cancelled, 1);
    const h = await untilRecall(held, (r) => r.state === 'done', 'done');
    assert.deepEqual(h.items.map((i: any) => [i.deviceId, i.state, i.reason]), [['n-held', 'cancelled', null]]);
    assert.equal(xiaomi.revokes.length, revokesBefore, 'nothing to revoke at Xiaomi');
    xiaomi.resetBehavior();

    const none = await app.api('GET', `/v1/messages/msg_nope/recall`);
    assert.equal(none.status, 404);
  });

  test('a campaign cancel with {"recall": true} recalls every run, even once the campaign completed', async () => {
    await register('c-ios', { platform: 'ios', tokens: { apns: 'c3'.repeat(32) }, tags: ['recall-camp'] });
    const r = await app.api('POST', '/v1/campaigns', {
      name: 'oops',
      audience: { tags: { all: ['recall-camp'] } },
      notification: { title: 'Wrong price', body: '99% off' },
      options: { collapseKey: 'promo-1' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const done = await eventually(async () => {
      const c = (await app.api('GET', `/v1/campaigns/${r.body.id}`)).body;
      return c.state === 'completed' && c.counts.sent === 1 ? c : undefined;
    }, 30_000, 'campaign sent');
    const runId = done.runs[0].messageId as string;
    const bad = await app.api('POST', `/v1/campaigns/${r.body.id}/pause`, { recall: true });
    assert.equal(bad.status, 400, 'only cancel recalls');
    const cancel = await app.api('POST', `/v1/campaigns/${r.body.id}/cancel`, { recall: true });
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    const rep = await untilRecall(runId, (x) => x.state === 'done', 'campaign run recalled');
    assert.deepEqual(rep.items.map((i: any) => [i.deviceId, i.state]), [['c-ios', 'replaced']]);
    const last = mocks.apns.requests.filter((q) => q.token === 'c3'.repeat(32)).at(-1)!;
    assert.equal(last.headers['apns-collapse-id'], 'promo-1');
    assert.equal((last.payload as any).relay_type, 'revoke');
  });

  test('a recall whose job was lost (the API died after recording it) is finished by the sweeper', async () => {
    await register('l-ios', { platform: 'ios', tokens: { apns: 'd4'.repeat(32) } });
    const id = await push({ to: { devices: ['l-ios'] }, notification: { title: 'x' }, options: { collapseKey: 'lost-1' } });
    await untilMessage(id, (m) => m.counts.sent === 1, 'sent');
    // What a DELETE that died right after recording the recall leaves: a running recall, no job.
    const { sql } = await import('kysely');
    await sql`INSERT INTO recalls (message_id, app_id, requested_at) VALUES (${id}, ${app.appId}, now() - interval '1 hour')`.execute(t.relay.ctx.db);
    assert.equal((await report(id)).state, 'running');
    await t.relay.sweeper!.sweep();
    const rep = await untilRecall(id, (x) => x.state === 'done', 'finished after the sweep');
    assert.deepEqual(rep.totals, { pending: 0, cancelled: 0, withdrawn: 0, replaced: 1, not_withdrawable: 0 });
  });

  test('a device that only polls the inbox gets the revoke there; its confirmation makes the delivery withdrawn', async () => {
    const self = await register('p-self', { platform: 'android', brand: 'samsung' });
    const screen = new Map<string, RelayMessage>();
    const poller = new RelayDevice({
      url: self.mqtt,
      apiBase: t.base,
      deviceId: 'p-self',
      password: self.password,
      notifications: { show: (m) => void screen.set(m.id, m), remove: (mid) => void screen.delete(mid) },
    });
    devices.push(poller);
    const id = await push({ to: { devices: ['p-self'] }, notification: { title: 'Polled', body: 'b' }, options: { channels: ['self'] } });
    await untilMessage(id, (m) => m.counts.sent === 1, 'waiting in the inbox');
    assert.equal(await poller.sync(), 1);
    assert.ok(screen.has(id));
    await untilMessage(id, (m) => m.counts.delivered === 1, 'reported delivered');

    await app.api('DELETE', `/v1/messages/${id}`);
    await untilRecall(id, (r) => r.state === 'done' && r.totals.pending === 1, 'pending revoke');
    const inbox = await fetch(`${t.base}/v1/devices/p-self/inbox`, { headers: { authorization: `Device p-self:${self.password}` } });
    assert.deepEqual(((await inbox.json()) as any).items, [{ type: 'revoke', id, seq: 1 }]);
    assert.equal(await poller.sync(), 0);
    assert.equal(screen.has(id), false, 'removed by the SDK');
    const done = await untilRecall(id, (r) => r.totals.withdrawn === 1, 'withdrawn after the confirmation');
    assert.equal(done.items[0].state, 'withdrawn');
    const after = await fetch(`${t.base}/v1/devices/p-self/inbox`, { headers: { authorization: `Device p-self:${self.password}` } });
    assert.deepEqual(((await after.json()) as any).items, [], 'a confirmed revoke is no longer listed');
  });

  test('an offline device gets its revoke when it reconnects; the SDK removes the shown notification and the delivery turns withdrawn', async () => {
    const self = await register('o-self', { platform: 'android', brand: 'samsung' });
    const first = await sdkDevice('o-self', self);
    const id = await push({ to: { devices: ['o-self'] }, notification: { title: 'Hi', body: 'there' }, options: { channels: ['self'] } });
    await untilMessage(id, (m) => m.counts.delivered === 1, 'acked');
    await eventually(async () => (first.screen.has(id) ? true : undefined), 10_000, 'shown');
    // Offline: presence gone.
    await first.dev.close();
    await eventually(async () => ((await t.relay.gateway!.presence.get(app.appId, 'o-self')) ? undefined : true), 10_000, 'offline');

    await app.api('DELETE', `/v1/messages/${id}`);
    const waiting = await untilRecall(id, (r) => r.state === 'done', 'walked');
    assert.deepEqual(waiting.totals, { pending: 1, cancelled: 0, withdrawn: 0, replaced: 0, not_withdrawable: 0 });
    assert.equal(waiting.items[0].state, 'pending');

    // The same device comes back (its store remembers what it showed): the gateway hands it the
    // revoke on connect, the SDK removes the notification, then acks.
    const back = await sdkDevice('o-self', self, first.store, first.screen);
    const done = await untilRecall(id, (r) => r.totals.withdrawn === 1, 'withdrawn after reconnect');
    assert.equal(done.totals.pending, 0);
    assert.equal(back.screen.has(id), false, 'the SDK removed the notification it had shown');
  });
});
