import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  OPPO_MAX_TTL,
  buildOppoNotification,
  classifyOppoCode,
  oppoIsChinaRegId,
  oppoSign,
  parseOppoReceipt,
  parseOppoSendAnswer,
} from '../../providers/oppo.js';
import { built, CHINA_NOON, codeOf, http, kinds, parcelContentAt, req } from '../helpers/vendor-fixtures.js';

const NOW = CHINA_NOON; // 12:00 in China
const content = parcelContentAt(NOW);

describe('signing', () => {
  it('OPPO: sha256(appKey + timestamp + masterSecret), lowercase hex', () => {
    assert.equal(oppoSign('appkey-1', '1700000000000', 'master-1'), '67695114b5723e4b52932c40b5755b2af39ea79eddca21c94af270d3dedabb80');
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
    assert.equal(!d.ok && codeOf(d.outcome), 'DataOnlyUnsupported');
    const big = buildOppoNotification(content({ data: { blob: 'x'.repeat(4100) } }), {}, {}, NOW);
    assert.equal(!big.ok && codeOf(big.outcome), 'PayloadTooLarge');
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
    assert.equal(codeOf(out[2]), 'quota');
    assert.equal(codeOf(out[3]), 'missing_result');
  });
  it('a top-level 10000 fails a batch (per-target invalidity comes in rows); a unicast 10000 stays invalid', () => {
    const out = parseOppoSendAnswer(http(200, { code: 10000, message: 'registration_id格式不正确' }), ['r1', 'r2'], true);
    assert.deepEqual(kinds(out), ['failed', 'failed']);
    assert.deepEqual(out.map(codeOf), ['10000', '10000']);
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
});
