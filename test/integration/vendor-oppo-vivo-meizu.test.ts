import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import meizuModule from '../../providers/meizu.js';
import oppoModule from '../../providers/oppo.js';
import type { Outcome, Provider, ProviderContext, PushContent, SendTarget } from '../../providers/types.js';
import vivoModule from '../../providers/vivo.js';
import { startMeizuMock, type MeizuMock } from '../mocks/vendors/meizu.js';
import { startOppoMock, type OppoMock } from '../mocks/vendors/oppo.js';
import { startVivoMock, type VivoMock } from '../mocks/vendors/vivo.js';

// Needs NODE_EXTRA_CA_CERTS=<testPki().caPath> (npm test sets it).

const CLOSED = 'https://127.0.0.1:1';

function ctxFor(endpoints: Partial<ProviderContext['endpoints']>): ProviderContext {
  return {
    endpoints: {
      fcm: CLOSED, huawei: CLOSED, huaweiOauth: CLOSED, xiaomi: CLOSED, oppo: CLOSED, vivo: CLOSED, honor: CLOSED, honorOauth: CLOSED, meizu: CLOSED,
      ...endpoints,
    },
    tuning: { apnsMaxStreams: 1, apnsConnections: 1, fcmConcurrency: 1 },
    logger: pino({ level: 'silent' }),
  };
}

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'msg-1',
    notification: { title: 'Order shipped', body: 'Your parcel is on its way', clickAction: 'app://orders/42' },
    data: { orderId: '42' },
    options: { ttl: 3600, priority: 'high', collapseKey: 'order-42', category: 'im' },
    expiresAt: Date.now() + 3600_000,
    ...over,
  };
}

const targets = (tokens: string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: `d${i}`, token }));
const kinds = (o: Outcome[]) => o.map((x) => x.kind);
const code = (o: Outcome | undefined) => (o && o.kind !== 'sent' ? o.reason.code : undefined);

describe('OPPO provider against the mock', () => {
  let mock: OppoMock;
  let provider: Provider;

  before(async () => {
    mock = await startOppoMock();
    provider = oppoModule.create({ appKey: mock.appKey, masterSecret: mock.masterSecret, channelId: 'orders' }, ctxFor({ oppo: mock.url }));
  });
  after(async () => {
    await provider.close();
    await mock.close();
  });

  it('authenticates once and sends a unicast with the documented body', async () => {
    const [o] = await provider.send(content(), targets(['CN_reg-1']));
    assert.equal(o?.kind, 'sent');
    assert.match(o?.kind === 'sent' ? (o.providerId ?? '') : '', new RegExp(`^${mock.appKey}-1-1-\\d+$`));
    assert.equal(mock.authCount, 1);
    const rec = mock.requests.find((r) => r.path.endsWith('/unicast'));
    assert.ok(rec?.messages);
    assert.equal(rec.form.auth_token, rec.headers['auth_token']);
    const n = rec.messages[0]!.notification as Record<string, unknown>;
    assert.equal(n.title, 'Order shipped');
    assert.equal(JSON.parse(n.action_parameters as string).relay_id, 'msg-1');
    assert.equal(n.app_message_id, 'msg-1');
    assert.deepEqual([n.channel_id, n.category, n.notify_level, n.click_action_type], ['orders', 'IM', 16, 5]);
    assert.ok((n.off_line_ttl as number) > 3500 && (n.off_line_ttl as number) <= 3600);
  });

  it('a batch with mixed per-target results, in target order', async () => {
    const out = await provider.send(content(), targets(['ok-1', 'invalid-2', 'quota-3', 'busy-4', 'ok-5']));
    assert.deepEqual(kinds(out), ['sent', 'invalid', 'failed', 'retry', 'sent']);
    assert.deepEqual(out.map(code), [undefined, '10000', 'quota', '-2', undefined]);
    const ids = out.filter((o) => o.kind === 'sent').map((o) => (o.kind === 'sent' ? o.providerId : ''));
    assert.equal(new Set(ids).size, 2);
  });

  it('chunks to 1000 targets per unicast_batch', async () => {
    const before = mock.requests.filter((r) => r.path.endsWith('unicast_batch')).length;
    const out = await provider.send(content(), targets(Array.from({ length: 1500 }, (_, i) => `tok-${i}`)));
    assert.equal(out.filter((o) => o.kind === 'sent').length, 1500);
    const batches = mock.requests.filter((r) => r.path.endsWith('unicast_batch')).slice(before);
    assert.deepEqual(batches.map((b) => b.messages?.length).sort(), [1000, 500]);
  });

  it('retryable answers carry afterMs (HTTP 503 Retry-After); the app daily limit fails `quota` until midnight China time', async () => {
    mock.setBehavior({ failFirst: { n: 1, answer: { status: 503, retryAfter: '4', rawBody: 'busy' } } });
    const [a] = await provider.send(content(), targets(['r']));
    assert.deepEqual(a?.kind === 'retry' && a.afterMs, 4000);
    mock.setBehavior({ failFirst: { n: 1, answer: { code: 33, message: '超过每日推送上限' } } });
    const [b] = await provider.send(content(), targets(['r']));
    assert.ok(b?.kind === 'failed' && b.reason.code === 'quota' && b.quotaResetAt !== undefined);
    assert.ok(b.quotaResetAt > Date.now() && b.quotaResetAt <= Date.now() + 86_400_000);
    mock.setBehavior({ failFirst: { n: 1, answer: { code: -2, message: 'flow control' } } });
    assert.equal((await provider.send(content(), targets(['r'])))[0]?.kind, 'retry');
  });

  it('a top-level 10000 on unicast_batch fails the batch without quarantining any token', async () => {
    mock.setBehavior({ failFirst: { n: 1, answer: { code: 10000, message: 'registration_id格式不正确' } } });
    const out = await provider.send(content(), targets(['b-1', 'b-2', 'b-3']));
    assert.deepEqual(kinds(out), ['failed', 'failed', 'failed']);
    assert.deepEqual(out.map(code), ['10000', '10000', '10000']);
  });

  it('a 私信 category without a channel goes out unclassified; the mock refuses one sent anyway (67)', async () => {
    const bare = oppoModule.create({ appKey: mock.appKey, masterSecret: mock.masterSecret }, ctxFor({ oppo: mock.url }));
    try {
      const [a] = await bare.send(content(), targets(['pm-1']));
      assert.equal(a?.kind, 'sent');
      const n = mock.requests.filter((r) => r.path.endsWith('/unicast')).at(-1)?.messages?.[0]?.notification as Record<string, unknown>;
      assert.deepEqual([n.channel_id, n.category, n.notify_level], [undefined, undefined, undefined]);
      const [b] = await bare.send(content({ overrides: { oppo: { notification: { category: 'IM' } } } }), targets(['pm-2']));
      assert.deepEqual([b?.kind, code(b)], ['failed', '67']);
    } finally {
      await bare.close();
    }
  });

  it('expired auth_token under N concurrent sends → exactly one refresh, all sent', async () => {
    await provider.send(content(), targets(['warm']));
    const auths = mock.authCount;
    mock.expireTokens();
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => provider.send(content({ messageId: `m-${i}` }), targets([`a-${i}`, `b-${i}`]))));
    assert.deepEqual(results.flat().map((o) => o.kind), Array(24).fill('sent'));
    assert.equal(mock.authCount - auths, 1);
  });

  it('a token refused again after the refresh → failed, after one refresh only', async () => {
    const auths = mock.authCount;
    mock.setBehavior({ rejectAllTokens: true });
    try {
      const out = await provider.send(content(), targets(['x', 'y']));
      assert.deepEqual(out.map(code), ['11', '11']);
      assert.deepEqual(kinds(out), ['failed', 'failed']);
      assert.equal(mock.authCount - auths, 1);
    } finally {
      mock.setBehavior({ rejectAllTokens: false });
    }
  });

  it('payload too large: refused locally; a body the server refuses → failed', async () => {
    const sends = mock.sendCount;
    const [a] = await provider.send(content({ data: { blob: 'x'.repeat(5000) } }), targets(['r']));
    assert.equal(code(a), 'PayloadTooLarge');
    const [b] = await provider.send(content({ overrides: { oppo: { notification: { content: 'y'.repeat(60), style: 1 } } } }), targets(['r']));
    assert.deepEqual([b?.kind, code(b)], ['failed', '41']);
    assert.equal(mock.sendCount, sends);
  });

  it('a wrong master secret fails with the auth code; an unreachable host retries', async () => {
    const bad = oppoModule.create({ appKey: mock.appKey, masterSecret: 'wrong' }, ctxFor({ oppo: mock.url }));
    const down = oppoModule.create({ appKey: 'k', masterSecret: 's' }, ctxFor({ oppo: CLOSED }));
    try {
      const [a] = await bad.send(content(), targets(['r']));
      assert.deepEqual([a?.kind, code(a)], ['failed', '16']);
      const [b] = await down.send(content(), targets(['r']));
      assert.equal(b?.kind, 'retry');
    } finally {
      await bad.close();
      await down.close();
    }
  });

  it('receipts from the mock parse back to the sent message ids', async () => {
    const [o] = await provider.send(content({ messageId: 'msg-r' }), targets(['rcpt-1']));
    assert.equal(o?.kind, 'sent');
    const providerId = o?.kind === 'sent' ? o.providerId! : '';
    const events = oppoModule.receipts!.parse(mock.receiptFor([
      { messageId: providerId, registrationIds: ['rcpt-1'], eventType: 'push_arrive', param: 'msg-r' },
      { messageId: providerId, registrationIds: ['rcpt-1'], eventType: 'regid_invalid' },
    ]));
    assert.deepEqual(events.map((e) => [e.event, e.providerId, e.token]), [
      ['delivered', providerId, 'rcpt-1'],
      ['invalid', providerId, 'rcpt-1'],
    ]);
    assert.equal(events[0]?.messageId, 'msg-r');
  });
});

describe('vivo provider against the mock', () => {
  let mock: VivoMock;
  let provider: Provider;

  before(async () => {
    mock = await startVivoMock();
    provider = vivoModule.create({ appId: mock.appId, appKey: mock.appKey, appSecret: mock.appSecret }, ctxFor({ vivo: mock.url }));
  });
  after(async () => {
    await provider.close();
    await mock.close();
  });

  it('one token → /message/send with the documented body', async () => {
    const [o] = await provider.send(content(), targets(['reg-1']));
    assert.equal(o?.kind, 'sent');
    assert.match(o?.kind === 'sent' ? (o.providerId ?? '') : '', /^\d+$/);
    assert.equal(mock.authCount, 1);
    const rec = mock.requests.find((r) => r.path === '/message/send');
    assert.ok(rec);
    assert.equal(typeof rec.headers.authtoken, 'string');
    const b = rec.body;
    assert.deepEqual([b.appId, b.regId, b.classification, b.category, b.skipType, b.skipContent], [10004, 'reg-1', 1, 'IM', 4, 'app://orders/42']);
    assert.equal((b.clientCustomMap as Record<string, string>).relay_id, 'msg-1');
    assert.ok((b.timeToLive as number) >= 60 && (b.timeToLive as number) <= 3600);
  });

  it('a batch → saveListPayload + pushToList, invalidUsers mapped per token', async () => {
    const before = mock.requests.length;
    const out = await provider.send(content(), targets(['ok-a', 'invalid-b', 'gone-c', 'notest-d', 'ok-e']));
    assert.deepEqual(kinds(out), ['sent', 'invalid', 'invalid', 'failed', 'sent']);
    const paths = mock.requests.slice(before).map((r) => r.path);
    assert.deepEqual(paths, ['/message/saveListPayload', '/message/pushToList']);
    const save = mock.requests[before]!;
    assert.equal(save.body.regId, undefined);
    const taskId = (save.answer as { taskId: string }).taskId;
    assert.equal(out[0]?.kind === 'sent' && out[0].providerId, taskId);
  });

  it('a single invalid token → invalid (10302)', async () => {
    const [o] = await provider.send(content(), targets(['invalid-solo']));
    assert.deepEqual([o?.kind, code(o)], ['invalid', '10302']);
  });

  it('1001 tokens → one list of 1000 and one single send', async () => {
    const before = mock.requests.length;
    const out = await provider.send(content(), targets(Array.from({ length: 1001 }, (_, i) => `t-${i}`)));
    assert.equal(out.filter((o) => o.kind === 'sent').length, 1001);
    const recs = mock.requests.slice(before);
    assert.deepEqual(recs.map((r) => r.path).sort(), ['/message/pushToList', '/message/saveListPayload', '/message/send']);
    assert.equal((recs.find((r) => r.path === '/message/pushToList')?.body.regIds as string[]).length, 1000);
  });

  it('retryable answers carry afterMs (429 Retry-After); the daily total 10070 fails `quota` until the reset', async () => {
    mock.setBehavior({ failFirst: { n: 1, answer: { status: 429, retryAfter: '2', rawBody: 'slow down' } } });
    const [a] = await provider.send(content(), targets(['r']));
    assert.deepEqual(a?.kind === 'retry' && a.afterMs, 2000);
    mock.setBehavior({ failFirst: { n: 1, answer: { result: 10070, desc: '超过当日推送总量' } } });
    const out = await provider.send(content(), targets(['r1', 'r2']));
    assert.ok(out.every((o) => o.kind === 'failed' && o.reason.code === 'quota' && (o.quotaResetAt ?? 0) > Date.now()));
  });

  it('10252: batches wait for China midnight without a request; a single leftover token still goes out', async () => {
    // Its own instance: the cap is remembered per provider, and the shared one must keep sending lists.
    const capped = vivoModule.create({ appId: mock.appId, appKey: mock.appKey, appSecret: mock.appSecret }, ctxFor({ vivo: mock.url }));
    mock.setBehavior({ listPayloadsPerDay: 0 });
    try {
      const first = await capped.send(content(), targets(['c-1', 'c-2', 'c-3']));
      assert.ok(first.every((o) => o.kind === 'retry' && code(o) === '10252' && o.afterMs! > 0 && o.afterMs! <= 86_400_000), JSON.stringify(first));
      const before = mock.requests.length;
      const later = await capped.send(content(), targets(Array.from({ length: 1001 }, (_, i) => `l-${i}`)));
      assert.ok(later.slice(0, 1000).every((o) => o.kind === 'retry' && code(o) === '10252'));
      assert.equal(later[1000]?.kind, 'sent');
      assert.deepEqual(mock.requests.slice(before).map((r) => r.path), ['/message/send']);
    } finally {
      mock.setBehavior({ listPayloadsPerDay: undefined });
      await capped.close();
    }
  });

  it('title and content limits are weighted: a Chinese title is cut to 20 characters; the mock refuses 21 (10056)', async () => {
    const [a] = await provider.send(content({ notification: { title: '订单'.repeat(15), body: '包裹'.repeat(40) } }), targets(['w-1']));
    assert.equal(a?.kind, 'sent');
    const b = mock.requests.filter((r) => r.path === '/message/send').at(-1)!.body;
    assert.deepEqual([b.title, b.content], ['订单'.repeat(10), '包裹'.repeat(25)]);
    const [c] = await provider.send(content({ overrides: { vivo: { message: { title: '订'.repeat(21) } } } }), targets(['w-2']));
    assert.deepEqual([c?.kind, code(c)], ['failed', '10056']);
  });

  it('expired authToken under N concurrent sends (single and list) → exactly one refresh, all sent', async () => {
    await provider.send(content(), targets(['warm']));
    const auths = mock.authCount;
    mock.expireTokens();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => provider.send(content({ messageId: `m-${i}` }), targets(i % 2 ? [`s-${i}`] : [`a-${i}`, `b-${i}`, `c-${i}`]))),
    );
    assert.ok(results.flat().every((o) => o.kind === 'sent'), JSON.stringify(results.flat().filter((o) => o.kind !== 'sent')));
    assert.equal(mock.authCount - auths, 1);
  });

  it('a token refused again after the refresh → failed', async () => {
    const auths = mock.authCount;
    mock.setBehavior({ rejectAllTokens: true });
    try {
      const out = await provider.send(content(), targets(['x', 'y']));
      assert.deepEqual(kinds(out), ['failed', 'failed']);
      assert.equal(code(out[0]), '10000');
      assert.equal(mock.authCount - auths, 1);
    } finally {
      mock.setBehavior({ rejectAllTokens: false });
    }
  });

  it('payload too large: refused locally; a body the server refuses → failed', async () => {
    const data = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, 'v']));
    const [a] = await provider.send(content({ data }), targets(['r']));
    assert.equal(code(a), 'PayloadTooLarge');
    const [b] = await provider.send(content({ overrides: { vivo: { message: { title: 'x'.repeat(41) } } } }), targets(['r']));
    assert.deepEqual([b?.kind, code(b)], ['failed', '10056']);
  });

  it('bad credentials fail with the vendor code', async () => {
    const bad = vivoModule.create({ appId: mock.appId, appKey: mock.appKey, appSecret: 'nope' }, ctxFor({ vivo: mock.url }));
    try {
      const [o] = await bad.send(content(), targets(['r']));
      assert.deepEqual([o?.kind, code(o)], ['failed', '10206']);
    } finally {
      await bad.close();
    }
  });

  it('receipts from the mock parse back to the task id', async () => {
    const [o] = await provider.send(content({ messageId: 'msg-v' }), targets(['rc-1']));
    const taskId = o?.kind === 'sent' ? o.providerId! : '';
    const events = vivoModule.receipts!.parse(mock.receiptFor([{ taskId, targets: ['rc-1'], param: 'msg-v' }]));
    assert.deepEqual(events.map((e) => [e.event, e.providerId, e.token, e.messageId]), [['delivered', taskId, 'rc-1', 'msg-v']]);
  });
});

describe('Meizu provider against the mock', () => {
  let mock: MeizuMock;
  let provider: Provider;

  before(async () => {
    mock = await startMeizuMock();
    provider = meizuModule.create({ appId: mock.appId, appSecret: mock.appSecret, callbackUrl: 'https://relay.example.com/v1/receipts/meizu/a' }, ctxFor({ meizu: mock.url }));
  });
  after(async () => {
    await provider.close();
    await mock.close();
  });

  it('a signed batch with mixed per-id results', async () => {
    const out = await provider.send(content(), targets(['ok-1', 'invalid-2', 'illegal-3', 'quota-4', 'busy-5']));
    assert.deepEqual(kinds(out), ['sent', 'invalid', 'invalid', 'failed', 'retry']);
    assert.equal(code(out[3]), 'quota');
    assert.match(out[0]?.kind === 'sent' ? (out[0].providerId ?? '') : '', /^NS/);
    const rec = mock.requests.at(-1)!;
    assert.equal(rec.status, 200);
    const m = rec.messageJson!;
    assert.equal((m.noticeBarInfo as Record<string, unknown>).noticeMsgType, 1);
    assert.equal(((m.clickTypeInfo as Record<string, unknown>).parameters as Record<string, string>).relay_id, 'msg-1');
    assert.equal((m.extra as Record<string, unknown>)['callback.param'], 'msg-1');
  });

  it('chunks to 100 pushIds per request', async () => {
    const before = mock.requests.length;
    const out = await provider.send(content(), targets(Array.from({ length: 250 }, (_, i) => `p-${i}`)));
    assert.equal(out.filter((o) => o.kind === 'sent').length, 250);
    assert.deepEqual(mock.requests.slice(before).map((r) => r.form.pushIds?.split(',').length).sort(), [100, 100, 50]);
  });

  it('rate limit (110010) and HTTP 503 with Retry-After → retry', async () => {
    mock.setBehavior({ failFirst: { n: 1, answer: { code: 110010, message: '应用请求频率超过限制' } } });
    const a = await provider.send(content(), targets(['r1', 'r2']));
    assert.deepEqual(kinds(a), ['retry', 'retry']);
    mock.setBehavior({ failFirst: { n: 1, answer: { status: 503, retryAfter: '3', rawBody: 'busy' } } });
    const [b] = await provider.send(content(), targets(['r']));
    assert.equal(b?.kind === 'retry' && b.afterMs, 3000);
  });

  it('payload errors → failed; a wrong secret → failed 1006', async () => {
    const [a] = await provider.send(content({ overrides: { meizu: { messageJson: { noticeBarInfo: { content: 'z'.repeat(150) } } } } }), targets(['r']));
    assert.deepEqual([a?.kind, code(a)], ['failed', '1005']);
    const bad = meizuModule.create({ appId: mock.appId, appSecret: 'wrong' }, ctxFor({ meizu: mock.url }));
    try {
      const [b] = await bad.send(content(), targets(['r']));
      assert.deepEqual([b?.kind, code(b)], ['failed', '1006']);
    } finally {
      await bad.close();
    }
  });

  it('receipts from the mock parse back to the msgId', async () => {
    const [o] = await provider.send(content({ messageId: 'msg-m' }), targets(['pid-1']));
    const msgId = o?.kind === 'sent' ? o.providerId! : '';
    const events = meizuModule.receipts!.parse(mock.receiptFor([
      { msgId, type: 1, targets: ['pid-1'], param: 'msg-m' },
      { msgId, type: 2, targets: ['pid-1'], param: 'msg-m' },
    ]));
    assert.deepEqual(events.map((e) => [e.event, e.providerId, e.token, e.messageId]), [
      ['delivered', msgId, 'pid-1', 'msg-m'],
      ['opened', msgId, 'pid-1', 'msg-m'],
    ]);
  });
});
