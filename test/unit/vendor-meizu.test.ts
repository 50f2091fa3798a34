import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildMeizuMessage,
  classifyMeizuTarget,
  classifyMeizuTop,
  meizuSign,
  parseMeizuReceipt,
  parseMeizuSendAnswer,
} from '../../providers/meizu.js';
import { built, CHINA_NOON, codeOf, http, kinds, parcelContentAt, req } from '../helpers/vendor-fixtures.js';

const NOW = CHINA_NOON; // 12:00 in China
const content = parcelContentAt(NOW);

describe('signing', () => {
  it('Meizu: md5 over params sorted by name as k=v, then appSecret; sign itself excluded', () => {
    const params = { pushIds: 'RA50,RB60', appId: '10000', messageJson: '{"a":1}' };
    assert.equal(meizuSign(params, 'SECRET'), 'f7ecffa72c48446cf0b0c81833b1ba44');
    assert.equal(meizuSign({ ...params, sign: 'x' }, 'SECRET'), 'f7ecffa72c48446cf0b0c81833b1ba44');
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
    // A daily count: failed `quota` at once, never retried at midnight.
    for (const c of [110019, 110051]) {
      const o = classifyMeizuTop(c, '', {});
      assert.deepEqual(o.kind === 'failed' && [o.reason.code, o.reason.evidence?.vendorCode, o.quotaResetAt], ['quota', c, undefined]);
    }
    for (const c of [1005, 1006, 110000, 110001, 110004, 110009, 110033, 4242]) assert.equal(classifyMeizuTop(c, '', {}).kind, 'failed', String(c));
  });
  it('per-id codes', () => {
    assert.equal(classifyMeizuTarget(110002, {}).kind, 'invalid');
    assert.equal(classifyMeizuTarget(110003, {}).kind, 'invalid');
    assert.equal(classifyMeizuTarget(110005, {}).kind, 'invalid');
    assert.equal(codeOf(classifyMeizuTarget(110011, {})), 'quota');
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
