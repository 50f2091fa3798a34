import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import meizuModule, {
  buildMeizuMessage,
  classifyMeizuTarget,
  classifyMeizuTop,
  meizuSign,
  parseMeizuReceipt,
  parseMeizuSendAnswer,
} from '../../providers/meizu.js';
import oppoModule, {
  OPPO_MAX_TTL,
  buildOppoNotification,
  classifyOppoCode,
  oppoIsChinaRegId,
  oppoSign,
  parseOppoReceipt,
  parseOppoSendAnswer,
} from '../../providers/oppo.js';
import { pino } from 'pino';
import { msUntilChinaMidnight } from '../../providers/shared/china-time.js';
import { CredentialError, type Outcome, type PushContent, type ReceiptRequest } from '../../providers/types.js';
import type { VendorFetchResult } from '../../providers/shared/http.js';
import vivoModule, {
  buildVivoMessage,
  classifyVivoResult,
  parseVivoReceipt,
  parseVivoSendAnswer,
  vivoAppIdValue,
  vivoInvalidUserOutcome,
  vivoSign,
} from '../../providers/vivo.js';

const NOW = Date.UTC(2025, 0, 10, 4, 0, 0); // 12:00 in China

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'm-42',
    notification: { title: 'Order shipped', body: 'Your parcel is on its way', clickAction: 'app://orders/42' },
    data: { orderId: '42', n: 7 },
    options: { ttl: 3600, priority: 'high', collapseKey: 'order-42', category: 'im' },
    expiresAt: NOW + 3600_000,
    ...over,
  };
}

const http = (status: number, json: unknown, headers: Record<string, string> = {}): VendorFetchResult => ({
  ok: true,
  status,
  headers: new Headers(headers),
  text: json === undefined ? '' : JSON.stringify(json),
  json,
});
const kinds = (o: Outcome[]) => o.map((x) => x.kind);
const code = (o: Outcome | undefined) => (o && o.kind !== 'sent' ? o.reason.code : undefined);
const req = (rawBody: string, contentType = 'application/json'): ReceiptRequest => ({ headers: { 'content-type': contentType }, rawBody, contentType });

function built<T>(b: { ok: true; value: T } | { ok: false; outcome: Outcome }): T {
  if (!b.ok) throw new Error(`expected a body, got ${JSON.stringify(b.outcome)}`);
  return b.value;
}

describe('signing', () => {
  it('OPPO: sha256(appKey + timestamp + masterSecret), lowercase hex', () => {
    assert.equal(oppoSign('appkey-1', '1700000000000', 'master-1'), '67695114b5723e4b52932c40b5755b2af39ea79eddca21c94af270d3dedabb80');
  });
  it('vivo: md5(appId + appKey + timestamp + appSecret)', () => {
    assert.equal(vivoSign('10004', 'vivo-key', '1700000000000', 'vivo-secret'), '6888c610abe88c9314b2845f88e7105a');
  });
  it('Meizu: md5 over params sorted by name as k=v, then appSecret; sign itself excluded', () => {
    const params = { pushIds: 'RA50,RB60', appId: '10000', messageJson: '{"a":1}' };
    assert.equal(meizuSign(params, 'SECRET'), 'f7ecffa72c48446cf0b0c81833b1ba44');
    assert.equal(meizuSign({ ...params, sign: 'x' }, 'SECRET'), 'f7ecffa72c48446cf0b0c81833b1ba44');
  });
});

describe('shared small rules', () => {
  it('OPPO region by registration id', () => {
    assert.equal(oppoIsChinaRegId('b6bbd94b59cdb5df8391642c1509b7fe'), true);
    assert.equal(oppoIsChinaRegId('CN_b6bb'), true);
    assert.equal(oppoIsChinaRegId('GB_b6bb'), false);
    assert.equal(oppoIsChinaRegId('OPPO_CN_b6bb'), true);
    assert.equal(oppoIsChinaRegId('OPPO_IN_b6bb'), false);
  });
  it('daily quotas reset at 00:00 China time', () => {
    assert.equal(msUntilChinaMidnight(Date.UTC(2025, 0, 1, 15, 59, 59)), 1000);
    assert.equal(msUntilChinaMidnight(Date.UTC(2025, 0, 1, 16, 0, 0)), 86_400_000);
    assert.equal(msUntilChinaMidnight(NOW), 12 * 3_600_000);
  });
  it('vivo appId goes out as a number when numeric', () => {
    assert.equal(vivoAppIdValue('10004'), 10004);
    assert.equal(vivoAppIdValue('app-x'), 'app-x');
  });
});

describe('OPPO body building', () => {
  const cred = { channelId: 'svc' };
  it('notification fields, extras with relay_id, dedupe id, TTL, click and class', () => {
    const n = built(buildOppoNotification(content(), cred, {}, NOW));
    assert.equal(n.title, 'Order shipped');
    assert.equal(n.content, 'Your parcel is on its way');
    assert.equal(n.style, 1);
    assert.deepEqual(JSON.parse(n.action_parameters as string), { orderId: '42', n: '7', relay_id: 'm-42' });
    assert.equal(n.app_message_id, 'm-42');
    assert.equal(n.off_line, true);
    assert.equal(n.off_line_ttl, 3600);
    assert.equal(n.click_action_type, 5);
    assert.equal(n.click_action_url, 'app://orders/42');
    assert.equal(n.channel_id, 'svc');
    assert.equal(n.category, 'IM');
    assert.equal(n.notify_level, 16);
    assert.equal(typeof n.notify_id, 'number');
    assert.equal(n.call_back_url, undefined);
  });
  it('long bodies use style 2 and are cut to OPPO limits; TTL capped at 10 days', () => {
    const c = content({ notification: { title: 't'.repeat(80), body: 'b'.repeat(300) }, expiresAt: NOW + 30 * 86_400_000 });
    const n = built(buildOppoNotification(c, {}, {}, NOW));
    assert.equal((n.title as string).length, 50);
    assert.equal(n.style, 2);
    assert.equal((n.content as string).length, 128);
    assert.equal(n.off_line_ttl, OPPO_MAX_TTL);
    assert.equal(n.click_action_type, 0);
  });
  it('web links, marketing class, normal priority, categoryMap and overrides merged last', () => {
    const c = content({ notification: { title: 'Sale', body: 'Now', clickAction: 'https://shop.example.com' }, options: { ttl: 60, priority: 'normal', category: 'marketing' } });
    const n = built(buildOppoNotification(c, { categoryMap: { marketing: { channelId: 'promo' } }, callbackUrl: 'https://relay.example.com/v1/receipts/oppo/a?secret=s' }, { notification: { show_ttl: 3600 } }, NOW));
    assert.deepEqual([n.click_action_type, n.click_action_url], [2, 'https://shop.example.com']);
    assert.deepEqual([n.category, n.notify_level, n.channel_id], ['MARKETING', 1, 'promo']);
    assert.equal(n.show_ttl, 3600);
    assert.equal(n.call_back_parameter, 'm-42');
    const svc = built(buildOppoNotification(content({ options: { ttl: 60, priority: 'normal', category: 'order' } }), {}, { notifyLevel: 2, category: 'TODO', channelId: 'todo' }, NOW));
    assert.deepEqual([svc.category, svc.notify_level, svc.channel_id], ['TODO', 2, 'todo']);
    const none = built(buildOppoNotification(content({ options: { ttl: 60, priority: 'high' } }), {}, {}, NOW));
    assert.equal(none.category, undefined);
    assert.equal(none.notify_level, undefined);
  });
  it('a 私信 category without a channel goes out as a plain public message (no category, no notify_level)', () => {
    const bare = built(buildOppoNotification(content(), {}, {}, NOW));
    assert.deepEqual([bare.channel_id, bare.category, bare.notify_level], [undefined, undefined, undefined]);
    const asked = built(buildOppoNotification(content({ options: { ttl: 60, priority: 'high', category: 'account' } }), {}, { category: 'DEVICE_REMINDER', notifyLevel: 16 }, NOW));
    assert.deepEqual([asked.category, asked.notify_level], [undefined, undefined]);
    // Any configured channel keeps the class: credential, categoryMap or request override.
    assert.deepEqual(['IM', 16], [built(buildOppoNotification(content(), { channelId: 'svc' }, {}, NOW))].map((n) => [n.category, n.notify_level])[0]);
    const mapped = built(buildOppoNotification(content({ options: { ttl: 60, priority: 'normal', category: 'order' } }), { categoryMap: { order: { channelId: 'orders' } } }, {}, NOW));
    assert.deepEqual([mapped.channel_id, mapped.category, mapped.notify_level], ['orders', 'ORDER', 2]);
    const over = built(buildOppoNotification(content(), {}, { channelId: 'chat' }, NOW));
    assert.deepEqual([over.channel_id, over.category], ['chat', 'IM']);
    // 公信 needs no private channel.
    const mk = built(buildOppoNotification(content({ options: { ttl: 60, priority: 'normal', category: 'marketing' } }), {}, {}, NOW));
    assert.deepEqual([mk.category, mk.notify_level], ['MARKETING', 1]);
  });
  it('data-only and oversized extras fail without a request', () => {
    const d = buildOppoNotification(content({ notification: undefined }), {}, {}, NOW);
    assert.equal(!d.ok && code(d.outcome), 'DataOnlyUnsupported');
    const big = buildOppoNotification(content({ data: { blob: 'x'.repeat(4100) } }), {}, {}, NOW);
    assert.equal(!big.ok && code(big.outcome), 'PayloadTooLarge');
  });
});

describe('OPPO classification', () => {
  it('every documented code', () => {
    for (const c of [-2, -1, 13, 55]) assert.equal(classifyOppoCode(c, '', {}, 'top').kind, 'retry', String(c));
    assert.equal(classifyOppoCode(10000, 'bad regid', {}, 'target').kind, 'invalid');
    // The app's daily total: failed `quota` now, skipping OPPO until 00:00 China time (quota days).
    const daily = classifyOppoCode(33, '', {}, 'top', NOW);
    assert.deepEqual(daily.kind === 'failed' && [daily.reason.code, daily.reason.evidence?.vendorCode, daily.quotaResetAt], ['quota', '33', NOW + 12 * 3_600_000]);
    const perDevice = classifyOppoCode(33, '', {}, 'target');
    assert.deepEqual(perDevice.kind === 'failed' && [perDevice.reason.code, perDevice.reason.evidence?.vendorCode], ['quota', 33]);
    for (const c of [11, 12, 14, 16, 19, 28, 30, 40, 41, 51, 67, 12345]) assert.equal(classifyOppoCode(c, '', {}, 'top').kind, 'failed', String(c));
  });
  it('batch answers map per registration id; a missing row retries', () => {
    const res = http(200, {
      code: 0,
      message: '',
      data: [
        { messageId: 'A-1', registrationId: 'r1' },
        { registrationId: 'r2', errorCode: 10000, errorMessage: 'registration_id格式不正确' },
        { registrationId: 'r3', errorCode: 33, errorMessage: 'daily' },
      ],
    });
    const out = parseOppoSendAnswer(res, ['r1', 'r2', 'r3', 'r4'], true);
    assert.deepEqual(kinds(out), ['sent', 'invalid', 'failed', 'retry']);
    assert.equal(out[0]?.kind === 'sent' && out[0].providerId, 'A-1');
    assert.equal(code(out[2]), 'quota');
    assert.equal(code(out[3]), 'missing_result');
  });
  it('a top-level 10000 fails a batch (per-target invalidity comes in rows); a unicast 10000 stays invalid', () => {
    const out = parseOppoSendAnswer(http(200, { code: 10000, message: 'registration_id格式不正确' }), ['r1', 'r2'], true);
    assert.deepEqual(kinds(out), ['failed', 'failed']);
    assert.deepEqual(out.map(code), ['10000', '10000']);
    const reason = out[0]?.kind === 'failed' ? out[0].reason : undefined;
    assert.equal(reason?.message, 'registration_id格式不正确');
    assert.deepEqual(reason?.evidence?.body, { code: 10000, message: 'registration_id格式不正确' });
    assert.equal(parseOppoSendAnswer(http(200, { code: 10000, message: 'bad' }), ['r'], false)[0]?.kind, 'invalid');
  });
  it('unicast answers, HTTP errors and transport failures', () => {
    const ok = parseOppoSendAnswer(http(200, { code: 0, data: { messageId: 'X-9' } }), ['r'], false);
    assert.equal(ok[0]?.kind === 'sent' && ok[0].providerId, 'X-9');
    assert.equal(parseOppoSendAnswer(http(200, { code: '10000', message: 'bad' }), ['r'], false)[0]?.kind, 'invalid');
    const busy = parseOppoSendAnswer({ ok: true, status: 503, headers: new Headers({ 'retry-after': '9' }), text: 'busy', json: undefined }, ['r'], false);
    assert.deepEqual(busy[0]?.kind === 'retry' && busy[0].afterMs, 9000);
    assert.equal(parseOppoSendAnswer({ ok: true, status: 400, headers: new Headers(), text: 'x', json: undefined }, ['r'], false)[0]?.kind, 'failed');
    assert.equal(parseOppoSendAnswer({ ok: false, reason: { code: 'ECONNRESET', message: 'reset' } }, ['a', 'b'], true)[1]?.kind, 'retry');
  });
});

describe('vivo body building', () => {
  const cred = { appId: '10004' };
  it('fields, limits, class mapping, extras and collapse id', () => {
    const m = built(buildVivoMessage(content({ notification: { title: 'T'.repeat(50), body: 'B'.repeat(150), clickAction: 'app://x' } }), cred, {}, NOW));
    assert.equal(m.appId, 10004);
    assert.equal((m.title as string).length, 40);
    assert.equal((m.content as string).length, 100);
    assert.equal(m.timeToLive, 3600);
    assert.deepEqual([m.skipType, m.skipContent], [4, 'app://x']);
    assert.deepEqual([m.classification, m.category], [1, 'IM']);
    assert.deepEqual(m.clientCustomMap, { orderId: '42', n: '7', relay_id: 'm-42' });
    assert.equal(m.notifyType, 4);
    assert.equal(m.pushMode, 0);
    assert.ok(Number.isInteger(m.notifyId) && (m.notifyId as number) >= 1);
    assert.equal(m.regId, undefined);
  });
  it('TTL stays within 60 s .. 1 day; URL clicks; marketing; no category → no classification', () => {
    const short = built(buildVivoMessage(content({ expiresAt: NOW + 10_000 }), cred, {}, NOW));
    assert.equal(short.timeToLive, 60);
    const long = built(buildVivoMessage(content({ expiresAt: NOW + 9 * 86_400_000 }), cred, {}, NOW));
    assert.equal(long.timeToLive, 86_400);
    const mk = built(buildVivoMessage(content({ notification: { title: 'a', body: 'b', clickAction: 'https://x.y' }, options: { ttl: 1, priority: 'normal', category: 'marketing' } }), cred, {}, NOW));
    assert.deepEqual([mk.skipType, mk.skipContent, mk.classification, mk.category, mk.notifyType], [2, 'https://x.y', 0, 'MARKETING', 2]);
    const none = built(buildVivoMessage(content({ options: { ttl: 1, priority: 'high' } }), cred, {}, NOW));
    assert.deepEqual([none.classification, none.category], [undefined, undefined]);
    const ov = built(buildVivoMessage(content(), cred, { classification: 0, category: 'NEWS', message: { foregroundShow: false } }, NOW));
    assert.deepEqual([ov.classification, ov.category, ov.foregroundShow], [0, 'NEWS', false]);
  });
  it('title and content limits are weighted: a non-ASCII character counts two, a surrogate pair is never split', () => {
    const cn = built(buildVivoMessage(content({ notification: { title: '订'.repeat(30), body: '货'.repeat(80) } }), cred, {}, NOW));
    assert.deepEqual([cn.title, cn.content], ['订'.repeat(20), '货'.repeat(50)]);
    const mixed = built(buildVivoMessage(content({ notification: { title: `Order ${'订'.repeat(20)}`, body: `a${'😀'.repeat(60)}` } }), cred, {}, NOW));
    assert.equal(mixed.title, `Order ${'订'.repeat(17)}`);
    assert.equal(mixed.content, `a${'😀'.repeat(49)}`);
    assert.ok(!/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(mixed.content as string));
    const fits = built(buildVivoMessage(content({ notification: { title: `${'订'.repeat(19)}ab`, body: 'b' } }), cred, {}, NOW));
    assert.equal(fits.title, `${'订'.repeat(19)}ab`);
  });
  it('receipt extras and test mode', () => {
    const m = built(buildVivoMessage(content(), { ...cred, callbackUrl: 'https://relay.example.com/cb', callbackId: '7', testMode: true }, {}, NOW));
    assert.deepEqual(m.extra, { 'callback.id': '7', callback: 'https://relay.example.com/cb', 'callback.param': 'm-42' });
    assert.equal(m.pushMode, 1);
  });
  it('too many custom pairs or chars → PayloadTooLarge; data-only → failed', () => {
    const data = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'v']));
    const many = buildVivoMessage(content({ data }), cred, {}, NOW);
    assert.equal(!many.ok && code(many.outcome), 'PayloadTooLarge');
    const long = buildVivoMessage(content({ data: { a: 'x'.repeat(1100) } }), cred, {}, NOW);
    assert.equal(!long.ok && code(long.outcome), 'PayloadTooLarge');
    const d = buildVivoMessage(content({ notification: {} }), cred, {}, NOW);
    assert.equal(!d.ok && code(d.outcome), 'DataOnlyUnsupported');
  });
});

describe('vivo classification', () => {
  it('every documented result code', () => {
    assert.equal(classifyVivoResult(10302, 'regId不合法', {}).kind, 'invalid');
    const daily = classifyVivoResult(10070, '', {}, NOW);
    assert.deepEqual(daily.kind === 'failed' && [daily.reason.code, daily.reason.evidence?.vendorCode, daily.quotaResetAt], ['quota', '10070', NOW + 12 * 3_600_000]);
    assert.equal(classifyVivoResult(10250, '', {}).kind, 'retry');
    const batchCap = classifyVivoResult(10252, '批量发送消息体超出限制', {}, NOW);
    assert.deepEqual(batchCap.kind === 'retry' && [batchCap.reason.code, batchCap.afterMs], ['10252', 12 * 3_600_000]);
    for (const c of [10000, 10050, 10054, 10055, 10056, 10094, 10096, 10097, 10206, 99999]) {
      assert.equal(classifyVivoResult(c, '', {}).kind, 'failed', String(c));
    }
  });
  it('invalidUser statuses', () => {
    assert.equal(vivoInvalidUserOutcome(1, 'r', {}).kind, 'invalid');
    assert.equal(vivoInvalidUserOutcome(2, 'r', {}).kind, 'invalid');
    assert.equal(vivoInvalidUserOutcome(3, 'r', {}).kind, 'invalid');
    assert.equal(code(vivoInvalidUserOutcome(4, 'r', {})), 'not_test_user');
    assert.equal(vivoInvalidUserOutcome(9, 'r', {}).kind, 'failed');
  });
  it('list answers (invalidUsers) and single answers (invalidUser) are both read', () => {
    const list = parseVivoSendAnswer(http(200, { result: 0, desc: 'ok', invalidUsers: [{ status: 2, userid: 'b' }] }), ['a', 'b', 'c'], 'T1');
    assert.deepEqual(kinds(list), ['sent', 'invalid', 'sent']);
    assert.equal(list[0]?.kind === 'sent' && list[0].providerId, 'T1');
    const single = parseVivoSendAnswer(http(200, { result: 10302, desc: 'regId不合法', invalidUser: { status: 1, userid: 'z' } }), ['z']);
    assert.equal(single[0]?.kind, 'invalid');
    const ok = parseVivoSendAnswer(http(200, { result: 0, desc: '请求成功', taskId: '555' }), ['z']);
    assert.equal(ok[0]?.kind === 'sent' && ok[0].providerId, '555');
    const e5 = parseVivoSendAnswer({ ok: true, status: 502, headers: new Headers(), text: '', json: undefined }, ['z']);
    assert.equal(e5[0]?.kind, 'retry');
  });
  it('a list 10302 naming no target fails every target with the vendor code, quarantining none', () => {
    const out = parseVivoSendAnswer(http(200, { result: 10302, desc: 'regId不合法' }), ['a', 'b'], 'T1');
    assert.deepEqual(kinds(out), ['failed', 'failed']);
    assert.deepEqual(out.map(code), ['10302', '10302']);
    assert.equal(out[0]?.kind === 'failed' && out[0].reason.message, 'regId不合法');
    // A single send's 10302 is about its one target.
    assert.equal(parseVivoSendAnswer(http(200, { result: 10302, desc: 'regId不合法' }), ['z'])[0]?.kind, 'invalid');
  });
});

/** Stubs `fetch` with a JSON answer per path; returns the paths requested, in order. */
function stubVivo(t: TestContext, answers: Record<string, () => unknown>): string[] {
  const paths: string[] = [];
  t.mock.method(globalThis, 'fetch', async (input: string | URL | Request) => {
    const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
    paths.push(path);
    const answer = path === '/message/auth' ? { result: 0, desc: '请求成功', authToken: 'tok' } : answers[path]?.();
    return new Response(JSON.stringify(answer ?? { result: 10099, desc: 'unexpected path' }), { status: 200, headers: { 'content-type': 'application/json' } });
  });
  return paths;
}

describe('vivo provider (stubbed fetch)', () => {
  const ctx = {
    endpoints: { fcm: '', huawei: '', huaweiOauth: '', xiaomi: '', oppo: '', vivo: 'https://vivo.test', honor: '', honorOauth: '', meizu: '' },
    tuning: { apnsMaxStreams: 1, apnsConnections: 1, fcmConcurrency: 1 },
    logger: pino({ level: 'silent' }),
  };
  const tokens = (n: number, prefix = 'r') => Array.from({ length: n }, (_, i) => ({ deliveryId: `d${i}`, token: `${prefix}${i}` }));
  const lasting = () => content({ expiresAt: NOW + 3 * 86_400_000 });

  it('10252 on saveListPayload: batches retry after China midnight and make no request until then; single sends go on', async (t) => {
    let clock = NOW;
    t.mock.method(Date, 'now', () => clock);
    const paths = stubVivo(t, {
      '/message/saveListPayload': () => ({ result: 10252, desc: '批量发送消息体超出限制' }),
      '/message/send': () => ({ result: 0, desc: '请求成功', taskId: '77' }),
    });
    const provider = vivoModule.create({ appId: '10004', appKey: 'cap-key', appSecret: 'cap-secret' }, ctx);
    try {
      const first = await provider.send(lasting(), tokens(3));
      assert.deepEqual(kinds(first), ['retry', 'retry', 'retry']);
      assert.deepEqual(first.map((o) => o.kind === 'retry' && [o.reason.code, o.afterMs]), Array(3).fill(['10252', 12 * 3_600_000]));
      assert.equal(paths.filter((p) => p === '/message/saveListPayload').length, 1);

      clock = NOW + 3_600_000;
      const requests = paths.length;
      const later = await provider.send(lasting(), tokens(1001));
      assert.equal(later.slice(0, 1000).every((o) => o.kind === 'retry' && code(o) === '10252' && o.afterMs === 11 * 3_600_000), true);
      assert.equal(later[1000]?.kind, 'sent');
      assert.deepEqual(paths.slice(requests), ['/message/send']);

      clock = NOW + 12 * 3_600_000 + 1000;
      await provider.send(lasting(), tokens(2));
      assert.equal(paths.filter((p) => p === '/message/saveListPayload').length, 2);
    } finally {
      await provider.close();
    }
  });

  it('a saveListPayload 10302 (no target named) fails the batch, as a pushToList 10302 without invalidUsers does', async (t) => {
    t.mock.method(Date, 'now', () => NOW);
    let saveAnswer: unknown = { result: 10302, desc: 'regId不合法' };
    stubVivo(t, {
      '/message/saveListPayload': () => saveAnswer,
      '/message/pushToList': () => ({ result: 10302, desc: 'regId不合法' }),
    });
    const provider = vivoModule.create({ appId: '10004', appKey: 'k302', appSecret: 's302' }, ctx);
    try {
      const saved = await provider.send(lasting(), tokens(2));
      assert.deepEqual([kinds(saved), saved.map(code)], [['failed', 'failed'], ['10302', '10302']]);
      saveAnswer = { result: 0, desc: '请求成功', taskId: '9' };
      const pushed = await provider.send(lasting(), tokens(2));
      assert.deepEqual([kinds(pushed), pushed.map(code)], [['failed', 'failed'], ['10302', '10302']]);
    } finally {
      await provider.close();
    }
  });
});

describe('Meizu body building', () => {
  it('notice bar, click, parameters with relay_id, validTime, notifyKey, class and callback', () => {
    const m = built(buildMeizuMessage(content({ notification: { title: 'x'.repeat(40), body: 'y'.repeat(120), clickAction: 'app://o/1' } }), { callbackUrl: 'https://relay.example.com/cb' }, {}, NOW));
    const bar = m.noticeBarInfo as Record<string, unknown>;
    assert.equal((bar.title as string).length, 32);
    assert.equal((bar.content as string).length, 100);
    assert.equal(bar.noticeMsgType, 1);
    assert.deepEqual(m.clickTypeInfo, { clickType: 2, url: 'app://o/1', parameters: { orderId: '42', n: '7', relay_id: 'm-42' } });
    assert.deepEqual(m.pushTimeInfo, { offLine: 1, validTime: 1 });
    const adv = m.advanceInfo as Record<string, unknown>;
    assert.match(adv.notifyKey as string, /^[A-Za-z0-9_-]{8}$/);
    assert.deepEqual(m.extra, { callback: 'https://relay.example.com/cb', 'callback.type': 3, 'callback.param': 'm-42' });
  });
  it('validTime in whole hours within 1..72; marketing is 公信; no category → no noticeMsgType', () => {
    const long = built(buildMeizuMessage(content({ expiresAt: NOW + 10 * 86_400_000, options: { ttl: 1, priority: 'normal', category: 'marketing' } }), {}, {}, NOW));
    assert.equal((long.pushTimeInfo as Record<string, unknown>).validTime, 72);
    assert.equal((long.noticeBarInfo as Record<string, unknown>).noticeMsgType, 0);
    const mid = built(buildMeizuMessage(content({ expiresAt: NOW + 5.5 * 3600_000, options: { ttl: 1, priority: 'high' } }), {}, {}, NOW));
    assert.equal((mid.pushTimeInfo as Record<string, unknown>).validTime, 5);
    assert.equal((mid.noticeBarInfo as Record<string, unknown>).noticeMsgType, undefined);
    assert.deepEqual((mid.clickTypeInfo as Record<string, unknown>).clickType, 2);
    const app = built(buildMeizuMessage(content({ notification: { title: 'a', body: 'b' } }), {}, { noticeMsgType: 0, messageJson: { advanceInfo: { fixDisplay: 1 } } }, NOW));
    assert.equal((app.clickTypeInfo as Record<string, unknown>).clickType, 0);
    assert.equal((app.noticeBarInfo as Record<string, unknown>).noticeMsgType, 0);
    assert.equal((app.advanceInfo as Record<string, unknown>).fixDisplay, 1);
  });
});

describe('Meizu classification', () => {
  it('top-level codes', () => {
    for (const c of [110010, 500, 1001, 1003]) assert.equal(classifyMeizuTop(c, '', {}).kind, 'retry', String(c));
    for (const c of [110019, 110051]) {
      const o = classifyMeizuTop(c, '', {}, NOW);
      assert.equal(o.kind === 'retry' && o.afterMs, 12 * 3_600_000);
    }
    for (const c of [1005, 1006, 110000, 110001, 110004, 110009, 110033, 4242]) assert.equal(classifyMeizuTop(c, '', {}).kind, 'failed', String(c));
  });
  it('per-id codes', () => {
    assert.equal(classifyMeizuTarget(110002, {}).kind, 'invalid');
    assert.equal(classifyMeizuTarget(110003, {}).kind, 'invalid');
    assert.equal(classifyMeizuTarget(110005, {}).kind, 'invalid');
    assert.equal(code(classifyMeizuTarget(110011, {})), 'quota');
    for (const c of [501, 513, 519]) assert.equal(classifyMeizuTarget(c, {}).kind, 'retry');
    const collapsed = classifyMeizuTarget(520, {});
    assert.equal(collapsed.kind === 'retry' && collapsed.afterMs, 60_000);
    for (const c of [110010, 201, 777]) assert.equal(classifyMeizuTarget(c, {}).kind, 'failed');
  });
  it('answers: value lists failed ids only; code as string or number; value "" when empty', () => {
    const res = http(200, { code: '200', message: '', value: { '110002': ['b'], '110011': ['c'] }, redirect: '', msgId: 'NS1' });
    const out = parseMeizuSendAnswer(res, ['a', 'b', 'c']);
    assert.deepEqual(kinds(out), ['sent', 'invalid', 'failed']);
    assert.equal(out[0]?.kind === 'sent' && out[0].providerId, 'NS1');
    assert.deepEqual(kinds(parseMeizuSendAnswer(http(200, { code: 200, value: '', msgId: 'NS2' }), ['a'])), ['sent']);
    assert.deepEqual(kinds(parseMeizuSendAnswer(http(200, { code: '110010', message: '应用请求频率超过限制', value: '', redirect: '' }), ['a', 'b'])), ['retry', 'retry']);
  });
});

describe('receipt parsing', () => {
  it('OPPO: array of events, comma-separated ids; a daily-limit event fails the delivery with reason quota', () => {
    const body = [
      { messageId: 'M1', appId: 'a', taskId: 'T', registrationIds: 'r1,r2', eventTime: '1736481600000', param: 'm-42', eventType: 'push_arrive' },
      { messageId: 'M2', appId: 'a', taskId: 'T', registrationIds: 'r3', eventTime: '1736481600000', param: '', eventType: 'regid_invalid' },
      { messageId: 'M3', appId: 'a', taskId: 'T', registrationIds: 'r4', eventTime: '1736481600000', param: '', eventType: 'user_daily_limit' },
    ];
    const ev = parseOppoReceipt(req(JSON.stringify(body)));
    assert.deepEqual(
      ev.map((e) => [e.event, e.providerId, e.token, e.messageId]),
      [
        ['delivered', 'M1', 'r1', 'm-42'],
        ['delivered', 'M1', 'r2', 'm-42'],
        ['invalid', 'M2', 'r3', undefined],
        ['failed', 'M3', 'r4', undefined],
      ],
    );
    assert.equal(ev[0]?.at, 1736481600000);
    assert.equal(ev[3]?.reason?.code, 'quota');
  });
  it('OPPO: malformed bodies throw', () => {
    for (const raw of ['nope', '42', '[1]', '[{"messageId":"x","registrationIds":"r"}]', '[{"eventType":"push_arrive","registrationIds":"r"}]', '[{"eventType":"push_arrive","messageId":"x"}]']) {
      assert.throws(() => parseOppoReceipt(req(raw)), /OPPO receipt/, raw);
    }
  });
  it('vivo: object keyed by taskId; ackType other than 0 not reported', () => {
    const ev = parseVivoReceipt(req(JSON.stringify({ '555758542050050048': { param: 'm-42', targets: '155134,155135' }, '9': { param: null, targets: 'x', ackType: '1' }, '10': { param: null, targets: ['y'], ackType: 0, ackTime: 1736481600 } })));
    assert.deepEqual(
      ev.map((e) => [e.event, e.providerId, e.token, e.messageId, e.at]),
      [
        ['delivered', '10', 'y', undefined, 1736481600000],
        ['delivered', '555758542050050048', '155134', 'm-42', undefined],
        ['delivered', '555758542050050048', '155135', 'm-42', undefined],
      ].sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
    );
  });
  it('vivo: malformed bodies throw', () => {
    for (const raw of ['', '[]', '{"t":1}', '{"t":{"param":"x"}}']) assert.throws(() => parseVivoReceipt(req(raw)), /vivo receipt/, raw);
  });
  it('Meizu: form field cb holds JSON keyed by msgId-type', () => {
    const cb = { 'NS2019_1_3-1': { param: 'm-42', type: 1, targets: ['S5Q4', 'S5Q5'] }, 'NS2019_1_3-2': { param: 'm-42', type: 2, targets: ['S5Q4'] } };
    const raw = new URLSearchParams({ cb: JSON.stringify(cb), access_token: 'c68b' }).toString();
    const ev = parseMeizuReceipt(req(raw, 'application/x-www-form-urlencoded'));
    assert.deepEqual(
      ev.map((e) => [e.event, e.providerId, e.token, e.messageId]),
      [
        ['delivered', 'NS2019_1_3', 'S5Q4', 'm-42'],
        ['delivered', 'NS2019_1_3', 'S5Q5', 'm-42'],
        ['opened', 'NS2019_1_3', 'S5Q4', 'm-42'],
      ],
    );
  });
  it('Meizu: malformed bodies throw', () => {
    const form = (cb: string) => new URLSearchParams({ cb }).toString();
    for (const raw of ['access_token=x', form('not json'), form('[1]'), form('{"k-1":{"type":1}}'), form('{"k-1":3}')]) {
      assert.throws(() => parseMeizuReceipt(req(raw, 'application/x-www-form-urlencoded')), /Meizu receipt/, raw);
    }
  });
});

describe('credentials', () => {
  it('schemas take exactly the SPEC fields plus documented optional ones', () => {
    assert.ok(oppoModule.credentialSchema.safeParse({ appKey: 'k', masterSecret: 's' }).success);
    assert.equal(oppoModule.credentialSchema.safeParse({ appKey: 'k' }).success, false);
    assert.ok(vivoModule.credentialSchema.safeParse({ appId: '1', appKey: 'k', appSecret: 's', categoryMap: { im: { category: 'IM' } } }).success);
    assert.equal(vivoModule.credentialSchema.safeParse({ appId: '1', appKey: 'k' }).success, false);
    assert.ok(meizuModule.credentialSchema.safeParse({ appId: '1', appSecret: 's' }).success);
    assert.equal(meizuModule.credentialSchema.safeParse({ appId: '1', appSecret: 's', categoryMap: { im: { category: 'im' } } }).success, false);
  });
  it('describe never shows secrets; receipt URLs lose their query', () => {
    const url = 'https://relay.example.com/v1/receipts/x/a?secret=topsecret';
    const shown = [
      oppoModule.describe({ appKey: 'k', masterSecret: 'MS', callbackUrl: url }),
      vivoModule.describe({ appId: '1', appKey: 'k', appSecret: 'AS', callbackUrl: url }),
      meizuModule.describe({ appId: '1', appSecret: 'ZS', callbackUrl: url }),
    ];
    for (const s of shown) {
      const text = JSON.stringify(s);
      assert.ok(!/MS|AS|ZS|topsecret/.test(text), text);
    }
  });
  it('receipt URLs over the vendor limit are refused', () => {
    const long = `https://relay.example.com/${'x'.repeat(200)}`;
    assert.throws(() => oppoModule.checkCredential!({ appKey: 'k', masterSecret: 's', callbackUrl: long }), CredentialError);
    assert.throws(() => vivoModule.checkCredential!({ appId: '1', appKey: 'k', appSecret: 's', callbackUrl: long }), CredentialError);
    assert.throws(() => meizuModule.checkCredential!({ appId: '1', appSecret: 's', callbackUrl: long }), CredentialError);
  });
  it('qps defaults and overrides', () => {
    assert.equal(oppoModule.qps!({ appKey: 'k', masterSecret: 's' }), 5000);
    assert.equal(vivoModule.qps!({ appId: '1', appKey: 'k', appSecret: 's' }), 3000);
    assert.equal(meizuModule.qps!({ appId: '1', appSecret: 's', qps: 50 }), 50);
  });
});
