import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Outcome } from '../../providers/types.js';
import { notifyIdFrom } from '../../providers/shared/ids.js';
import huawei, {
  buildHuaweiBody,
  classifyHuaweiAnswer,
  huaweiCredentialSchema,
  huaweiOverridesSchema,
  isHuaweiAuthRejected,
  parseHuaweiReceipt,
} from '../../providers/huawei.js';
import { buildHonorBody } from '../../providers/honor.js';
import { validateHuaweiBody } from '../mocks/vendors/huawei.js';
import { codeOf, FIXED_NOW, http, kinds, netErr, orderContentAt } from '../helpers/vendor-fixtures.js';

const NOW = FIXED_NOW;
const content = orderContentAt(NOW);

// ---------------------------------------------------------------------------------------------

describe('huawei: body', () => {
  const cred = { appId: '100405075', clientSecret: 's' };

  it('builds a notification message the mock accepts', () => {
    const body = buildHuaweiBody(content({ options: { ttl: 3600, priority: 'high', collapseKey: 'order-42', category: 'order' } }), ['t1', 't2'], cred, NOW);
    assert.ok(body);
    assert.equal(validateHuaweiBody(body), undefined);
    const message = body.message as Record<string, any>;
    assert.deepEqual(message.token, ['t1', 't2']);
    assert.deepEqual(JSON.parse(message.data), { orderId: '42', n: 3, relay_id: 'm-1' });
    assert.equal(message.android.ttl, '3600s');
    assert.equal(message.android.bi_tag, 'm-1');
    assert.equal(message.android.category, 'EXPRESS');
    assert.deepEqual(message.android.notification.click_action, { type: 1, intent: 'app://orders/42' });
    assert.equal(message.android.notification.importance, 'NORMAL');
    assert.equal(message.android.notification.tag, 'order-42');
    assert.equal(message.android.notification.notify_id, notifyIdFrom('order-42'));
    assert.equal(message.android.notification.title, 'Order shipped');
  });

  it('remaining TTL (clamped to 15 days), URL clicks, no click, sound', () => {
    const b1 = buildHuaweiBody(content({ expiresAt: NOW + 90 * 86_400_000 }), ['t'], cred, NOW)!;
    assert.equal((b1.message as any).android.ttl, '1296000s');
    const b2 = buildHuaweiBody(content({ expiresAt: NOW + 61_500 }), ['t'], cred, NOW)!;
    assert.equal((b2.message as any).android.ttl, '61s');
    const b3 = buildHuaweiBody(content({ notification: { title: 'a', body: 'b', clickAction: 'https://x.example/p', sound: 'ding' } }), ['t'], cred, NOW)!;
    assert.deepEqual((b3.message as any).android.notification.click_action, { type: 2, url: 'https://x.example/p' });
    assert.equal((b3.message as any).android.notification.sound, '/raw/ding');
    const b4 = buildHuaweiBody(content({ notification: { body: 'only body' } }), ['t'], cred, NOW)!;
    assert.deepEqual((b4.message as any).android.notification.click_action, { type: 3 });
    assert.equal((b4.message as any).android.notification.title, 'only body');
    assert.equal(validateHuaweiBody(b4), undefined);
    assert.equal(buildHuaweiBody(content({ expiresAt: NOW - 1 }), ['t'], cred, NOW), undefined);
  });

  it('data-only messages carry relay_id and no notification', () => {
    const body = buildHuaweiBody(content({ notification: undefined }), ['t'], cred, NOW)!;
    assert.equal(validateHuaweiBody(body), undefined);
    assert.equal((body.message as any).android.notification, undefined);
    assert.equal(JSON.parse((body.message as any).data).relay_id, 'm-1');
  });

  it('a data message carries only the data categories (VOIP, PLAY_VOICE)', () => {
    const data = (category: string) =>
      buildHuaweiBody(content({ notification: undefined, options: { ttl: 60, priority: 'high', category } }), ['t'], cred, NOW)!;
    const im = data('im');
    assert.equal((im.message as any).android.category, undefined);
    assert.equal(validateHuaweiBody(im), undefined);
    const voip = data('voip');
    assert.equal((voip.message as any).android.category, 'VOIP');
    assert.equal(validateHuaweiBody(voip), undefined);
    // The mock refuses what Relay no longer sends.
    assert.equal(validateHuaweiBody({ message: { token: ['t'], data: '{}', android: { category: 'IM' } } })?.code, '80100001');
  });

  it('a non-HTTPS image is left out, the notification still goes', () => {
    const withImage = (image: string) => buildHuaweiBody(content({ notification: { title: 'a', body: 'b', image } }), ['t'], cred, NOW)!;
    assert.equal((withImage('https://cdn.example/i.png').message as any).android.notification.image, 'https://cdn.example/i.png');
    const plain = withImage('http://cdn.example/i.png');
    assert.equal((plain.message as any).android.notification.image, undefined);
    assert.equal(validateHuaweiBody(plain), undefined);
    const honorBody = buildHonorBody(content({ notification: { title: 'a', body: 'b', image: 'http://cdn.example/i.png' } }), ['t'], cred, NOW)!;
    assert.equal((honorBody.android as any).notification.image, undefined);
  });

  it('overrides and the credential categoryMap / receiptId merge last', () => {
    const c = content({
      options: { ttl: 60, priority: 'normal', category: 'im' },
      overrides: { huawei: { importance: 'LOW', collapseKey: 1, android: { notification: { visibility: 'PUBLIC' }, urgency: 'HIGH' } } },
    });
    const body = buildHuaweiBody(c, ['t'], { ...cred, categoryMap: { im: { channelId: 'chat' } }, receiptId: 'RCP1' }, NOW)!;
    const a = (body.message as any).android;
    assert.equal(a.notification.importance, 'LOW');
    assert.equal(a.notification.channel_id, 'chat');
    assert.equal(a.notification.visibility, 'PUBLIC');
    assert.equal(a.notification.click_action.type, 1);
    assert.equal(a.collapse_key, 1);
    assert.equal(a.urgency, 'HIGH');
    assert.equal(a.receipt_id, 'RCP1');
    assert.equal(a.category, 'IM');
    assert.equal(huaweiOverridesSchema.safeParse({ importance: 'LOUD' }).success, false);
    assert.equal(huaweiOverridesSchema.safeParse({ typo: 1 }).success, false);
  });

  it('credential schema and describe', () => {
    assert.equal(huaweiCredentialSchema.safeParse({ appId: '100405075', clientSecret: 's' }).success, true);
    assert.equal(huaweiCredentialSchema.safeParse({ appId: 'abc', clientSecret: 's' }).success, false);
    assert.equal(huaweiCredentialSchema.safeParse({ appId: '1' }).success, false);
    const d = huawei.describe({ appId: '1', clientSecret: 'secret!' });
    assert.ok(!JSON.stringify(d).includes('secret!'));
    assert.equal(huawei.qps?.({ appId: '1', clientSecret: 's' }), 6000);
  });
});

describe('huawei: answer classification', () => {
  const toks = ['a', 'b', 'c'];
  it('success and partial success with illegal_tokens', () => {
    const ok = classifyHuaweiAnswer(http(200, { code: '80000000', msg: 'Success', requestId: 'R1' }), toks);
    assert.deepEqual(ok, [{ kind: 'sent', providerId: 'R1' }, { kind: 'sent', providerId: 'R1' }, { kind: 'sent', providerId: 'R1' }]);
    const msg = JSON.stringify({ success: 2, failure: 1, illegal_tokens: ['b'] });
    const part = classifyHuaweiAnswer(http(200, { code: '80100000', msg, requestId: 'R2' }), toks);
    assert.deepEqual(kinds(part), ['sent', 'invalid', 'sent']);
    assert.equal(codeOf(part[1]), '80100000');
    // A numeric code is read the same way.
    assert.deepEqual(kinds(classifyHuaweiAnswer(http(200, { code: 80000000, requestId: 'R' }), ['a'])), ['sent']);
  });

  const table: Array<[string, number, Record<string, unknown>, Outcome['kind'], string]> = [
    ['all invalid', 400, { code: '80300007', msg: 'all the tokens are invalid' }, 'invalid', '80300007'],
    ['too large', 400, { code: '80300008', msg: 'too big' }, 'failed', '80300008'],
    ['param', 400, { code: '80100001', msg: 'bad' }, 'failed', '80100001'],
    ['bad structure', 400, { code: '80100003', msg: 'bad' }, 'failed', '80100003'],
    ['ttl past', 400, { code: '80100004', msg: 'ttl' }, 'failed', '80100004'],
    ['collapse key', 400, { code: '80100013', msg: 'ck' }, 'failed', '80100013'],
    ['sensitive', 400, { code: '80100016', msg: 'sensitive' }, 'failed', '80100016'],
    ['no permission', 403, { code: '80300002', msg: 'no perm' }, 'failed', '80300002'],
    ['token count', 400, { code: '80300010', msg: 'count' }, 'failed', '80300010'],
    ['high priority', 400, { code: '80300011', msg: 'prio' }, 'failed', '80300011'],
    ['oauth server', 400, { code: '80600003', msg: 'oauth' }, 'failed', '80600003'],
    ['internal', 500, { code: '81000001', msg: 'internal' }, 'retry', '81000001'],
    ['internal on 200', 200, { code: '81000001', msg: 'internal' }, 'retry', '81000001'],
    ['flow control', 503, { msg: 'flow control' }, 'retry', 'HTTP503'],
    ['bad gateway', 502, {}, 'retry', 'HTTP502'],
    ['auth after refresh', 401, { code: '80200003', msg: 'expired' }, 'failed', '80200003'],
    ['auth error after refresh', 401, { code: '80200001', msg: 'auth' }, 'failed', '80200001'],
    ['unknown code', 400, { code: '89999999', msg: '?' }, 'failed', '89999999'],
  ];
  for (const [name, status, body, kind, code] of table) {
    it(`${name} (${code}) → ${kind}`, () => {
      const out = classifyHuaweiAnswer(http(status, body), toks);
      assert.deepEqual(kinds(out), [kind, kind, kind]);
      assert.equal(codeOf(out[0]), code);
      assert.ok((out[0] as { reason: { evidence?: Record<string, unknown> } }).reason.evidence);
    });
  }

  it('Retry-After becomes afterMs; network errors retry', () => {
    const out = classifyHuaweiAnswer(http(503, { msg: 'flow control' }, { 'retry-after': '12' }), ['a']);
    assert.deepEqual(out[0], { kind: 'retry', afterMs: 12_000, reason: (out[0] as any).reason });
    const net = classifyHuaweiAnswer(netErr, ['a', 'b']);
    assert.deepEqual(kinds(net), ['retry', 'retry']);
    assert.equal(codeOf(net[0]), 'ECONNRESET');
  });

  it('auth rejection detection', () => {
    assert.equal(isHuaweiAuthRejected(http(401, { code: '80200003' })), true);
    assert.equal(isHuaweiAuthRejected(http(200, { code: '80200001' })), true);
    assert.equal(isHuaweiAuthRejected(http(401, 'x')), true);
    assert.equal(isHuaweiAuthRejected(http(400, { code: '80100001' })), false);
    assert.equal(isHuaweiAuthRejected(netErr), false);
  });
});

describe('huawei: receipts', () => {
  const req = (rawBody: string) => ({ headers: {}, rawBody, contentType: 'application/json' });
  it('status 0 → delivered with request id, biTag and token; other statuses ignored', () => {
    const body = {
      statuses: [
        { timestamp: 1552459811754, token: 'tok1', appid: '100405075', biTag: 'm-1', status: 0, requestId: '155245981150032647501' },
        { timestamp: 1552459811754, token: 'tok2', appid: '100405075', biTag: '', status: 5, requestId: '155245981150032647501' },
      ],
    };
    assert.deepEqual(parseHuaweiReceipt(req(JSON.stringify(body))), [
      { event: 'delivered', providerId: '155245981150032647501', messageId: 'm-1', token: 'tok1', at: 1552459811754 },
    ]);
  });
  it('malformed bodies throw', () => {
    assert.throws(() => parseHuaweiReceipt(req('not json')), /huawei receipt/);
    assert.throws(() => parseHuaweiReceipt(req('{"foo":1}')), /statuses/);
    assert.throws(() => parseHuaweiReceipt(req('{"statuses":[]}')), /statuses/);
    assert.throws(() => parseHuaweiReceipt(req('{"statuses":[{"token":"t"}]}')), /huawei receipt/);
  });
});

// ---------------------------------------------------------------------------------------------
