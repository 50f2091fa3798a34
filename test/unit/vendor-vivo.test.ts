import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import vivoModule, {
  buildVivoMessage,
  classifyVivoResult,
  parseVivoReceipt,
  parseVivoSendAnswer,
  vivoAppIdValue,
  vivoInvalidUserOutcome,
  vivoSign,
} from '../../providers/vivo.js';
import { providerContext } from '../helpers/provider-context.js';
import { built, CHINA_NOON, codeOf, http, kinds, parcelContentAt, req } from '../helpers/vendor-fixtures.js';

const NOW = CHINA_NOON; // 12:00 in China
const content = parcelContentAt(NOW);

describe('signing', () => {
  it('vivo: md5(appId + appKey + timestamp + appSecret)', () => {
    assert.equal(vivoSign('10004', 'vivo-key', '1700000000000', 'vivo-secret'), '6888c610abe88c9314b2845f88e7105a');
  });
});

describe('shared small rules', () => {
  it('vivo appId goes out as a number when numeric', () => {
    assert.equal(vivoAppIdValue('10004'), 10004);
    assert.equal(vivoAppIdValue('app-x'), 'app-x');
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
    assert.equal(!many.ok && codeOf(many.outcome), 'PayloadTooLarge');
    const long = buildVivoMessage(content({ data: { a: 'x'.repeat(1100) } }), cred, {}, NOW);
    assert.equal(!long.ok && codeOf(long.outcome), 'PayloadTooLarge');
    const d = buildVivoMessage(content({ notification: {} }), cred, {}, NOW);
    assert.equal(!d.ok && codeOf(d.outcome), 'DataOnlyUnsupported');
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
    assert.equal(codeOf(vivoInvalidUserOutcome(4, 'r', {})), 'not_test_user');
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
    assert.deepEqual(out.map(codeOf), ['10302', '10302']);
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
  const ctx = providerContext({ endpoints: { vivo: 'https://vivo.test' }, tuning: { apnsMaxStreams: 1, apnsConnections: 1, fcmConcurrency: 1 } });
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
      assert.equal(later.slice(0, 1000).every((o) => o.kind === 'retry' && codeOf(o) === '10252' && o.afterMs === 11 * 3_600_000), true);
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
      assert.deepEqual([kinds(saved), saved.map(codeOf)], [['failed', 'failed'], ['10302', '10302']]);
      saveAnswer = { result: 0, desc: '请求成功', taskId: '9' };
      const pushed = await provider.send(lasting(), tokens(2));
      assert.deepEqual([kinds(pushed), pushed.map(codeOf)], [['failed', 'failed'], ['10302', '10302']]);
    } finally {
      await provider.close();
    }
  });
});

describe('receipt parsing', () => {
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
});
