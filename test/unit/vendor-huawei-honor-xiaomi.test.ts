 
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Outcome, PushContent } from '../../providers/types.js';
import { chunk, sendInChunks } from '../../providers/shared/batches.js';
import { clickTarget } from '../../providers/shared/click.js';
import { remainingTtlSeconds } from '../../providers/shared/expiry.js';
import { retryAfterMs, type VendorFetchResult } from '../../providers/shared/http.js';
import { notifyIdFrom, shortIdFrom } from '../../providers/shared/ids.js';
import { deepMerge } from '../../providers/shared/json.js';
import { createLimiter } from '../../providers/shared/limiter.js';
import { messageClass } from '../../providers/shared/message-class.js';
import { meizuClass } from '../../providers/meizu.js';
import { vivoClass } from '../../providers/vivo.js';
import { epochMs } from '../../providers/shared/receipts.js';
import { relayData, relayDataStrings } from '../../providers/shared/relay-keys.js';
import { truncateChars } from '../../providers/shared/text.js';
import { TokenCache, VendorAuthError, acquireTokenCache, callWithToken } from '../../providers/shared/token-cache.js';
import huawei, {
  buildHuaweiBody,
  classifyHuaweiAnswer,
  huaweiClass,
  huaweiCredentialSchema,
  huaweiOverridesSchema,
  isHuaweiAuthRejected,
  parseHuaweiReceipt,
} from '../../providers/huawei.js';
import honor, { buildHonorBody, honorClass, classifyHonorAnswer, honorCredentialSchema, honorOverridesSchema, isHonorAuthRejected, parseHonorReceipt } from '../../providers/honor.js';
import xiaomi, {
  XIAOMI_MAX_TTL_MARKETING_SEC,
  buildXiaomiForm,
  xiaomiClass,
  classifyXiaomiAnswer,
  parseXiaomiReceipt,
  xiaomiCredentialSchema,
  xiaomiOverridesSchema,
} from '../../providers/xiaomi.js';
import { validateHuaweiBody } from '../mocks/vendors/huawei.js';
import { validateHonorBody } from '../mocks/vendors/honor.js';
import { validateXiaomiForm } from '../mocks/vendors/xiaomi.js';

const NOW = 1_750_000_000_000;

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'm-1',
    notification: { title: 'Order shipped', body: 'Your order 42 is on its way', clickAction: 'app://orders/42' },
    data: { orderId: '42', n: 3 },
    options: { ttl: 3600, priority: 'high' },
    expiresAt: NOW + 3_600_000,
    ...over,
  };
}

/** A fake HTTP answer for the classifiers. */
function http(status: number, json: unknown, headers: Record<string, string> = {}): VendorFetchResult {
  return { ok: true, status, headers: new Headers(headers), text: JSON.stringify(json), json };
}
const netErr: VendorFetchResult = { ok: false, reason: { code: 'ECONNRESET', message: 'socket hang up' } };

const kinds = (o: Outcome[]) => o.map((x) => x.kind);
const codeOf = (o: Outcome | undefined) => (o && 'reason' in o ? o.reason.code : undefined);

// ---------------------------------------------------------------------------------------------

describe('vendor-common: TokenCache', () => {
  it('caches, refreshes before expiry, and single-flights concurrent callers', async () => {
    let now = 0;
    let n = 0;
    let release: (() => void) | undefined;
    const cache = new TokenCache(
      async () => {
        n++;
        await new Promise<void>((r) => (release = r));
        return { token: `t${n}`, expiresInSec: 3600 };
      },
      { now: () => now, refreshMarginMs: 300_000 },
    );
    const all = Promise.all([cache.get(), cache.get(), cache.get()]);
    await new Promise((r) => setImmediate(r));
    release?.();
    assert.deepEqual(await all, ['t1', 't1', 't1']);
    assert.equal(cache.fetchCount, 1);
    now = 3_600_000 - 300_001;
    assert.equal(await cache.get(), 't1');
    now = 3_600_000 - 299_999; // inside the refresh margin
    const p = cache.get();
    await new Promise((r) => setImmediate(r));
    release?.();
    assert.equal(await p, 't2');
    assert.equal(cache.fetchCount, 2);
  });

  it('refresh(stale) fetches once for many callers holding the same stale token', async () => {
    let n = 0;
    const cache = new TokenCache(async () => ({ token: `t${++n}`, expiresInSec: 3600 }));
    assert.equal(await cache.get(), 't1');
    const got = await Promise.all(Array.from({ length: 10 }, () => cache.refresh('t1')));
    assert.ok(got.every((t) => t === 't2'));
    assert.equal(cache.fetchCount, 2);
    // A caller that failed with the old token after the refresh reuses the new one.
    assert.equal(await cache.refresh('t1'), 't2');
    assert.equal(cache.fetchCount, 2);
    // The new token itself refused → a new fetch.
    assert.equal(await cache.refresh('t2'), 't3');
  });

  it('a failed fetch is not cached and the next call retries', async () => {
    let n = 0;
    const cache = new TokenCache(async () => {
      if (++n === 1) throw new VendorAuthError({ code: 'x', message: 'down' }, true);
      return { token: 'ok' };
    });
    await assert.rejects(cache.get(), VendorAuthError);
    assert.equal(await cache.get(), 'ok');
  });

  it('callWithToken refreshes once on an auth rejection and reports a second one', async () => {
    let n = 0;
    const cache = new TokenCache(async () => ({ token: `t${++n}` }));
    const seen: string[] = [];
    const ok = await callWithToken(cache, async (t) => (seen.push(t), t === 't1' ? 'expired' : 'fine'), (r) => r === 'expired');
    assert.deepEqual(ok, { result: 'fine', authRejected: false, refreshed: true });
    assert.deepEqual(seen, ['t1', 't2']);
    const bad = await callWithToken(cache, async () => 'expired', (r) => r === 'expired');
    assert.equal(bad.authRejected, true);
    assert.equal(cache.fetchCount, 3);
  });

  it('acquireTokenCache shares one cache per credential and drops it on the last release', () => {
    const f = async () => ({ token: 'x' });
    const a = acquireTokenCache(['v', 'u', 'id', 's'], f);
    const b = acquireTokenCache(['v', 'u', 'id', 's'], f);
    const c = acquireTokenCache(['v', 'u', 'id', 'other'], f);
    assert.equal(a.cache, b.cache);
    assert.notEqual(a.cache, c.cache);
    a.release();
    b.release();
    c.release();
    const d = acquireTokenCache(['v', 'u', 'id', 's'], f);
    assert.notEqual(d.cache, a.cache);
    d.release();
  });
});

describe('vendor-common: helpers', () => {
  it('createLimiter never runs more than max tasks at once', async () => {
    const limit = createLimiter(3);
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        limit(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setImmediate(r));
          active--;
        }),
      ),
    );
    assert.equal(peak, 3);
    assert.equal(limit.active, 0);
    assert.throws(() => createLimiter(0), RangeError);
  });

  it('chunk, sendInChunks keep order and turn a thrown chunk into retries', async () => {
    assert.deepEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(chunk([], 3), []);
    const outs = await sendInChunks([1, 2, 3, 4, 5], 2, createLimiter(2), async (c) => {
      if (c.includes(3)) throw new Error('boom');
      return c.map((x) => ({ kind: 'sent', providerId: String(x) }) as Outcome);
    });
    assert.deepEqual(kinds(outs), ['sent', 'sent', 'retry', 'retry', 'sent']);
    assert.equal((outs[4] as { providerId: string }).providerId, '5');
  });

  it('remainingTtlSeconds floors, clamps, and is 0 once expired', () => {
    assert.equal(remainingTtlSeconds(NOW + 10_999, { now: NOW }), 10);
    assert.equal(remainingTtlSeconds(NOW + 100_000_000, { now: NOW, max: 3600 }), 3600);
    assert.equal(remainingTtlSeconds(NOW - 1, { now: NOW }), 0);
    assert.equal(remainingTtlSeconds(NOW + 999, { now: NOW }), 0);
  });

  it('retryAfterMs reads delta-seconds and HTTP dates', () => {
    assert.equal(retryAfterMs(new Headers({ 'retry-after': '7' })), 7000);
    assert.equal(retryAfterMs({ 'retry-after': new Date(NOW + 5000).toUTCString() }, NOW), 5000);
    assert.equal(retryAfterMs(new Headers()), undefined);
    assert.equal(retryAfterMs({ 'retry-after': 'soon' }), undefined);
  });

  it('ids, relay data, click targets, truncation, timestamps, deepMerge', () => {
    const id = notifyIdFrom('order-42');
    assert.ok(id >= 1 && id <= 2147483647);
    assert.equal(id, notifyIdFrom('order-42'));
    assert.notEqual(id, notifyIdFrom('order-43'));
    assert.match(shortIdFrom('m-1'), /^[0-9A-Za-z_-]{20}$/);
    assert.deepEqual(relayData(content({ data: { relay_id: 'spoof', a: 1 } })), { relay_id: 'm-1', a: 1 });
    assert.deepEqual(relayDataStrings(content()), { orderId: '42', n: '3', relay_id: 'm-1' });
    assert.deepEqual(clickTarget(undefined), { kind: 'app' });
    assert.deepEqual(clickTarget('https://x.example/a'), { kind: 'url', url: 'https://x.example/a' });
    assert.deepEqual(clickTarget('app://orders/42'), { kind: 'intent', uri: 'app://orders/42' });
    // UTF-16 units, as a Java server counts (more in test/unit/vendor-text.test.ts).
    assert.equal(truncateChars('😀😀😀', 4), '😀😀');
    assert.equal(epochMs(1552459811), 1552459811000);
    assert.equal(epochMs('1552459811754'), 1552459811754);
    assert.equal(epochMs(undefined), undefined);
    assert.deepEqual(deepMerge({ a: { b: 1, c: 2 }, d: [1] }, { a: { c: 3 }, d: [2] }), { a: { b: 1, c: 3 }, d: [2] });
  });
});

describe('vendor-common: category mapping', () => {
  it('maps neutral categories per vendor', () => {
    assert.deepEqual(messageClass(huaweiClass, 'im'), { kind: 'service', importance: 'NORMAL', category: 'IM' });
    assert.deepEqual(messageClass(huaweiClass, 'order'), { kind: 'service', importance: 'NORMAL', category: 'EXPRESS' });
    assert.deepEqual(messageClass(huaweiClass, 'Marketing'), { kind: 'marketing', importance: 'LOW', category: 'MARKETING' });
    assert.deepEqual(messageClass(huaweiClass, 'news'), { kind: 'marketing', importance: 'LOW' });
    assert.deepEqual(messageClass(honorClass, 'account'), { kind: 'service', importance: 'NORMAL' });
    assert.deepEqual(messageClass(honorClass, 'news'), { kind: 'marketing', importance: 'LOW' });
    assert.deepEqual(messageClass(xiaomiClass, 'im'), { kind: 'service' });
    assert.deepEqual(messageClass(vivoClass, 'marketing'), { kind: 'marketing', category: 'MARKETING', classification: 0 });
    assert.deepEqual(messageClass(meizuClass, 'order'), { kind: 'service', noticeMsgType: 1 });
  });

  it('no or unknown category → undefined unless the credential has a default', () => {
    assert.equal(messageClass(huaweiClass, undefined), undefined);
    assert.equal(messageClass(huaweiClass, 'weird'), undefined);
    assert.deepEqual(messageClass(xiaomiClass, 'weird', { default: { channelId: 'c0' } }), { kind: 'service', channelId: 'c0' });
  });

  it('credential categoryMap then request override win, in that order', () => {
    const map = { im: { channelId: 'c-im' }, marketing: { channelId: 'c-mkt' } };
    assert.deepEqual(messageClass(xiaomiClass, 'im', map), { kind: 'service', channelId: 'c-im' });
    assert.deepEqual(messageClass(xiaomiClass, 'marketing', map), { kind: 'marketing', channelId: 'c-mkt' });
    assert.deepEqual(messageClass(xiaomiClass, 'im', map, { channelId: 'c-req' }), { kind: 'service', channelId: 'c-req' });
    assert.deepEqual(messageClass(huaweiClass, 'im', { im: { category: 'WORK' } }, { importance: 'LOW' }), {
      kind: 'service',
      importance: 'LOW',
      category: 'WORK',
    });
    // Undefined override fields do not erase the mapping.
    assert.deepEqual(messageClass(huaweiClass, 'im', undefined, { importance: undefined }), { kind: 'service', importance: 'NORMAL', category: 'IM' });
  });
});

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

describe('honor: body', () => {
  const cred = { appId: '104433299', clientId: 'c', clientSecret: 's' };
  it('builds a camelCase notification message the mock accepts', () => {
    const body = buildHonorBody(content({ options: { ttl: 3600, priority: 'high', collapseKey: 'k', category: 'marketing' } }), ['t1'], cred, NOW)!;
    assert.equal(validateHonorBody(body), undefined);
    const a = body.android as Record<string, any>;
    assert.deepEqual(body.token, ['t1']);
    assert.equal(JSON.parse(body.data as string).relay_id, 'm-1');
    assert.equal(a.ttl, '3600s');
    assert.equal(a.biTag, 'm-1');
    assert.equal(a.notification.importance, 'LOW');
    assert.deepEqual(a.notification.clickAction, { type: 1, intent: 'app://orders/42' });
    assert.equal(a.notification.notifyId, notifyIdFrom('k'));
    assert.equal(a.notification.tag, 'k');
  });
  it('data-only, expiry, overrides', () => {
    const d = buildHonorBody(content({ notification: undefined }), ['t'], cred, NOW)!;
    assert.equal(validateHonorBody(d), undefined);
    assert.equal((d.android as any).notification, undefined);
    assert.equal(buildHonorBody(content({ expiresAt: NOW }), ['t'], cred, NOW), undefined);
    const o = buildHonorBody(content({ overrides: { honor: { importance: 'NORMAL', targetUserType: 1, android: { notification: { style: 1 } } } } }), ['t'], cred, NOW)!;
    assert.equal((o.android as any).targetUserType, 1);
    assert.equal((o.android as any).notification.importance, 'NORMAL');
    assert.equal((o.android as any).notification.style, 1);
    assert.equal(honorOverridesSchema.safeParse({ importance: 'HIGH' }).success, false);
  });
  it('credential schema and describe', () => {
    assert.equal(honorCredentialSchema.safeParse(cred).success, true);
    assert.equal(honorCredentialSchema.safeParse({ appId: '1', clientSecret: 's' }).success, false);
    const d = honor.describe({ ...cred, clientSecret: 'secret!' });
    assert.deepEqual(d, { appId: '104433299', clientId: 'c' });
    assert.equal(honor.qps?.(cred), 3000);
  });
});

describe('honor: answer classification', () => {
  it('code 200 (int or string) with expireTokens / failTokens', () => {
    const body = (code: unknown) => ({ code, message: 'ok', data: { sendResult: true, requestId: 'H1', expireTokens: ['b'], failTokens: ['c'] } });
    for (const code of [200, '200']) {
      const out = classifyHonorAnswer(http(200, body(code)), ['a', 'b', 'c']);
      assert.deepEqual(kinds(out), ['sent', 'invalid', 'retry']);
      assert.deepEqual(out[0], { kind: 'sent', providerId: 'H1' });
      assert.equal(codeOf(out[1]), 'expireTokens');
      assert.equal(codeOf(out[2]), 'failTokens');
    }
  });
  const table: Array<[string, number, Record<string, unknown>, Outcome['kind'], string]> = [
    ['auth after refresh', 401, { code: 80200003, message: 'expired' }, 'failed', '80200003'],
    ['rate limited', 429, { code: 429, message: 'slow down' }, 'retry', '429'],
    ['server error', 500, { code: 500, message: 'oops' }, 'retry', '500'],
    ['503 in body', 200, { code: 503, message: 'busy' }, 'retry', '503'],
    ['too large', 400, { code: 80300008, message: 'big' }, 'failed', '80300008'],
    ['bad request', 400, { code: 80100001, message: 'bad' }, 'failed', '80100001'],
    ['sendResult false', 200, { code: 200, data: { sendResult: false, requestId: 'x' } }, 'retry', 'sendResult_false'],
  ];
  for (const [name, status, body, kind, code] of table) {
    it(`${name} → ${kind}`, () => {
      const out = classifyHonorAnswer(http(status, body, { 'retry-after': '3' }), ['a', 'b']);
      assert.deepEqual(kinds(out), [kind, kind]);
      assert.equal(codeOf(out[0]), code);
      if (status === 429) assert.equal((out[0] as { afterMs?: number }).afterMs, 3000);
    });
  }
  it('auth rejection detection and network errors', () => {
    assert.equal(isHonorAuthRejected(http(401, {})), true);
    assert.equal(isHonorAuthRejected(http(200, { code: 80200003 })), true);
    assert.equal(isHonorAuthRejected(http(200, { code: 200 })), false);
    assert.deepEqual(kinds(classifyHonorAnswer(netErr, ['a'])), ['retry']);
  });
});

describe('honor: receipts', () => {
  const req = (rawBody: string) => ({ headers: {}, rawBody, contentType: 'application/json' });
  it('40000002 (and 0) → delivered', () => {
    const body = { statuses: [{ token: 't', biTag: 'm-1', status: 40000002, timestamp: 1700000000000, requestId: 'H1' }, { token: 'u', status: 7 }] };
    assert.deepEqual(parseHonorReceipt(req(JSON.stringify(body))), [{ event: 'delivered', providerId: 'H1', messageId: 'm-1', token: 't', at: 1700000000000 }]);
  });
  it('malformed bodies throw', () => {
    assert.throws(() => parseHonorReceipt(req('<xml/>')), /honor receipt/);
    assert.throws(() => parseHonorReceipt(req('[]')), /honor receipt/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('xiaomi: form', () => {
  const cred = { appSecret: 's', packageName: 'com.example.relay' };
  const check = (f: URLSearchParams) => validateXiaomiForm(f, { packageName: cred.packageName });

  it('builds a notification form the mock accepts', () => {
    const f = buildXiaomiForm(content({ options: { ttl: 60, priority: 'high', collapseKey: 'c-1', category: 'im' } }), ['r1', 'r2'], { ...cred, categoryMap: { im: { channelId: '108423' } }, callbackUrl: 'https://relay.example/v1/receipts/xiaomi/a?secret=x' }, NOW)!;
    assert.equal(check(f), undefined);
    assert.equal(f.get('registration_id'), 'r1,r2');
    assert.equal(f.get('restricted_package_name'), 'com.example.relay');
    assert.equal(f.get('pass_through'), '0');
    assert.equal(f.get('title'), 'Order shipped');
    assert.equal(f.get('description'), 'Your order 42 is on its way');
    assert.equal(f.get('time_to_live'), String(3_600_000));
    assert.equal(f.get('notify_id'), String(notifyIdFrom('c-1')));
    assert.equal(f.get('extra.notify_effect'), '2');
    assert.equal(f.get('extra.intent_uri'), 'app://orders/42');
    assert.equal(f.get('extra.channel_id'), '108423');
    assert.equal(f.get('extra.relay_id'), 'm-1');
    assert.equal(f.get('extra.callback.param'), 'm-1');
    assert.equal(f.get('extra.callback.type'), '19');
    assert.match(f.get('extra.jobkey') ?? '', /^[0-9A-Za-z][0-9A-Za-z_-]{0,11}$/);
    assert.deepEqual(JSON.parse(f.get('payload') ?? ''), { orderId: '42', n: 3, relay_id: 'm-1' });
  });

  it('pass-through, long titles, URL click, notify id per message, TTL caps', () => {
    const p = buildXiaomiForm(content({ notification: undefined }), ['r'], cred, NOW)!;
    assert.equal(check(p), undefined);
    assert.equal(p.get('pass_through'), '1');
    assert.equal(p.get('title'), null);
    const long = buildXiaomiForm(content({ notification: { title: 'x'.repeat(80), body: 'y'.repeat(300), clickAction: 'https://w.example' } }), ['r'], cred, NOW)!;
    assert.equal(check(long), undefined);
    assert.equal(long.get('title')?.length, 49);
    assert.equal(long.get('extra.notify_effect'), '3');
    assert.equal(long.get('extra.web_uri'), 'https://w.example');
    // Without a collapse key each message gets its own notify id (else Xiaomi shows only the latest).
    assert.equal(buildXiaomiForm(content(), ['r'], cred, NOW)!.get('notify_id'), String(notifyIdFrom('m-1')));
    const mk = buildXiaomiForm(content({ expiresAt: NOW + 30 * 86_400_000, options: { ttl: 1, priority: 'normal', category: 'marketing' } }), ['r'], cred, NOW)!;
    assert.equal(mk.get('time_to_live'), String(XIAOMI_MAX_TTL_MARKETING_SEC * 1000));
    assert.equal(buildXiaomiForm(content({ expiresAt: NOW }), ['r'], cred, NOW), undefined);
  });

  it('a blank title or description is absent: each falls back on the other', () => {
    const t = buildXiaomiForm(content({ notification: { title: '   ', body: 'Your order 42 is on its way' } }), ['r'], cred, NOW)!;
    assert.equal(check(t), undefined);
    assert.equal(t.get('pass_through'), '0');
    assert.equal(t.get('title'), 'Your order 42 is on its way');
    assert.equal(t.get('description'), 'Your order 42 is on its way');
    const b = buildXiaomiForm(content({ notification: { title: 'Order shipped', body: '\n\t ' } }), ['r'], cred, NOW)!;
    assert.equal(check(b), undefined);
    assert.equal(b.get('title'), 'Order shipped');
    assert.equal(b.get('description'), 'Order shipped');
    // Leading blanks are dropped, so the cut to 49 can never leave only whitespace.
    const lead = buildXiaomiForm(content({ notification: { title: `${' '.repeat(60)}Hi`, body: 'b' } }), ['r'], cred, NOW)!;
    assert.equal(check(lead), undefined);
    assert.equal(lead.get('title'), 'Hi');
  });

  it('both blank: a pass-through (data) message, as with no notification', () => {
    const f = buildXiaomiForm(content({ notification: { title: ' ', body: '\u3000', clickAction: 'app://x' } }), ['r'], cred, NOW)!;
    assert.equal(check(f), undefined);
    assert.equal(f.get('pass_through'), '1');
    assert.equal(f.get('title'), null);
    assert.equal(f.get('description'), null);
    assert.equal(f.get('extra.notify_effect'), null);
  });

  it('title < 50 and description < 128 in UTF-16 units: emoji count 2, pairs are not split', () => {
    const f = buildXiaomiForm(content({ notification: { title: '😀'.repeat(40), body: `x${'🚚'.repeat(100)}` } }), ['r'], cred, NOW)!;
    assert.equal(check(f), undefined);
    assert.equal(f.get('title'), '😀'.repeat(24));
    assert.equal(f.get('description'), `x${'🚚'.repeat(63)}`);
    assert.deepEqual(check(new URLSearchParams({ ...Object.fromEntries(f), title: '😀'.repeat(25) })), { code: 10017, description: 'title must be shorter than 50 characters' });
  });

  it('jobkey: ≤ 12 chars, first alphanumeric, the same for every attempt of one message', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = `m-${i}`;
      const key = buildXiaomiForm(content({ messageId: id }), ['r'], cred, NOW)!.get('extra.jobkey') ?? '';
      assert.match(key, /^[0-9A-Za-z][0-9A-Za-z_-]{0,11}$/, `message ${id}`);
      assert.equal(buildXiaomiForm(content({ messageId: id }), ['r2'], cred, NOW + 60_000)!.get('extra.jobkey'), key);
      seen.add(key);
    }
    // Equal jobkeys make the device drop the later message: distinct messages must not share one.
    assert.equal(seen.size, 2000);
  });

  it('the mock refuses a jobkey over 12 chars or starting with "_"', () => {
    const f = buildXiaomiForm(content(), ['r'], cred, NOW)!;
    const withKey = (k: string) => check(new URLSearchParams({ ...Object.fromEntries(f), 'extra.jobkey': k }));
    assert.equal(withKey('abc-DEF_123x'), undefined);
    assert.equal(withKey('abc-DEF_123xy')?.code, 10017);
    assert.equal(withKey('_abc')?.code, 10017);
  });

  it('credential channelId default, overrides merged last', () => {
    const f = buildXiaomiForm(
      content({ overrides: { xiaomi: { channelId: 'ovr', notifyType: 2, extra: { notify_foreground: '0' }, fields: { time_to_send: '1' } } } }),
      ['r'],
      { ...cred, channelId: 'dflt' },
      NOW,
    )!;
    assert.equal(f.get('extra.channel_id'), 'ovr');
    assert.equal(f.get('notify_type'), '2');
    assert.equal(f.get('extra.notify_foreground'), '0');
    assert.equal(f.get('time_to_send'), '1');
    assert.equal(buildXiaomiForm(content(), ['r'], { ...cred, channelId: 'dflt' }, NOW)!.get('extra.channel_id'), 'dflt');
    assert.equal(xiaomiOverridesSchema.safeParse({ notifyType: 9 }).success, false);
  });

  it('credential schema and describe', () => {
    assert.equal(xiaomiCredentialSchema.safeParse(cred).success, true);
    assert.equal(xiaomiCredentialSchema.safeParse({ appSecret: 's', packageName: 'nodots' }).success, false);
    const d = xiaomi.describe({ appSecret: 'secret!', packageName: 'com.a.b', callbackUrl: 'https://h/x?secret=zzz' });
    assert.deepEqual(d, { packageName: 'com.a.b', callbackUrl: 'https://h/x' });
    assert.equal(xiaomi.qps?.(cred), 500);
  });
});

describe('xiaomi: answer classification', () => {
  it('ok with bad_regids / bad_regIds', () => {
    for (const field of ['bad_regids', 'bad_regIds']) {
      const out = classifyXiaomiAnswer(http(200, { result: 'ok', code: 0, data: { id: 'scm1', [field]: 'b' } }), ['a', 'b']);
      assert.deepEqual(out[0], { kind: 'sent', providerId: 'scm1' });
      assert.equal(out[1]?.kind, 'invalid');
      assert.equal(codeOf(out[1]), 'bad_regids');
    }
  });
  it('ok with day_quota / day_acked / channel_exceed_quota stays sent (❓ their meaning on success)', () => {
    const answers = [
      { day_quota: '0', day_acked: '7' },
      { day_quota: '100', day_acked: '100' },
      { day_quota: '100', day_acked: '250', channel_exceed_quota: 'true' },
      { channel_exceed_quota: 'no_channel:2 a:3' },
    ];
    for (const extra of answers) {
      const out = classifyXiaomiAnswer(http(200, { result: 'ok', code: 0, data: { id: 'scm9', ...extra } }), ['a', 'b']);
      assert.deepEqual(out, [{ kind: 'sent', providerId: 'scm9' }, { kind: 'sent', providerId: 'scm9' }], JSON.stringify(extra));
    }
  });
  const table: Array<[number, number, Outcome['kind'], string]> = [
    [200, 10022, 'retry', '10022'],
    [200, 10023, 'retry', '10023'],
    [200, 10024, 'retry', '10024'],
    [200, 10027, 'retry', '10027'],
    [200, 10028, 'retry', '10028'],
    [200, 10001, 'retry', '10001'],
    [200, 10002, 'retry', '10002'],
    [200, 10003, 'retry', '10003'],
    [200, 10009, 'retry', '10009'],
    [200, -1, 'retry', '-1'],
    [200, 20301, 'retry', '20301'],
    [500, 10001, 'retry', '10001'],
    [200, 22008, 'failed', '22008'],
    [200, 22022, 'failed', '22022'],
    [200, 22001, 'failed', '22001'],
    [200, 10026, 'failed', '10026'],
    [200, 22101, 'failed', 'quota'],
    [200, 10018, 'failed', '10018'],
    [200, 10016, 'failed', '10016'],
    [200, 10017, 'failed', '10017'],
    [200, 22103, 'failed', '22103'],
    [200, 100, 'failed', '100'],
  ];
  for (const [status, code, kind, want] of table) {
    it(`code ${code} (HTTP ${status}) → ${kind} ${want}`, () => {
      const out = classifyXiaomiAnswer(http(status, { result: 'error', code, description: 'd', reason: 'r' }), ['a']);
      assert.equal(out[0]?.kind, kind);
      assert.equal(codeOf(out[0]), want);
      assert.equal((out[0] as { reason: { message: string } }).reason.message, 'd: r');
    });
  }
  it('rate limit keeps Retry-After; quota keeps the vendor code; HTTP-only answers', () => {
    const rl = classifyXiaomiAnswer(http(200, { result: 'error', code: 10027 }, { 'retry-after': '4' }), ['a']);
    assert.equal((rl[0] as { afterMs?: number }).afterMs, 4000);
    const q = classifyXiaomiAnswer(http(200, { result: 'error', code: 22101 }), ['a']);
    assert.equal((q[0] as any).reason.evidence.vendorCode, 22101);
    assert.equal(classifyXiaomiAnswer(http(429, 'x'), ['a'])[0]?.kind, 'retry');
    assert.equal(classifyXiaomiAnswer(http(401, 'x'), ['a'])[0]?.kind, 'failed');
    assert.equal(classifyXiaomiAnswer(netErr, ['a'])[0]?.kind, 'retry');
  });
});

describe('xiaomi: receipts', () => {
  const form = (data: unknown) => ({
    headers: {},
    contentType: 'application/x-www-form-urlencoded',
    rawBody: new URLSearchParams({ data: typeof data === 'string' ? data : JSON.stringify(data) }).toString(),
  });
  it('delivered / clicked / invalid per target', () => {
    const ev = parseXiaomiReceipt(
      form({
        scm1: { barStatus: 'Enable', type: 1, targets: 'r1,r2', timestamp: 1552470320982, param: 'm-1', jobkey: 'j' },
        scm2: { type: 2, targets: 'r3', timestamp: 1552470320982, param: 'm-2' },
        scm3: { type: 16, targets: 'r4', timestamp: 1552470320982 },
        scm4: { type: 64, targets: 'r5' },
      }),
    );
    assert.deepEqual(
      ev.map((e) => [e.event, e.providerId, e.token, e.messageId]),
      [
        ['delivered', 'scm1', 'r1', 'm-1'],
        ['delivered', 'scm1', 'r2', 'm-1'],
        ['opened', 'scm2', 'r3', 'm-2'],
        ['invalid', 'scm3', 'r4', undefined],
      ],
    );
    assert.equal(ev[0]?.at, 1552470320982);
    assert.equal(ev[3]?.reason?.code, 'callback_type_16');
  });
  it('type is a bitmask: one event per bit set, strongest first', () => {
    const ev = parseXiaomiReceipt(
      form({
        scm1: { type: 3, targets: 'r1,r2', timestamp: 1552470320982, param: 'm-1' },
        scm2: { type: '19', targets: 'r3', param: 'm-2' },
        scm3: { type: 17, targets: 'r4' },
        scm4: { type: 1 | 64, targets: 'r5' },
        scm5: { type: 32 | 128, targets: 'r6' },
      }),
    );
    assert.deepEqual(
      ev.map((e) => [e.event, e.providerId, e.token, e.messageId]),
      [
        ['opened', 'scm1', 'r1', 'm-1'],
        ['opened', 'scm1', 'r2', 'm-1'],
        ['delivered', 'scm1', 'r1', 'm-1'],
        ['delivered', 'scm1', 'r2', 'm-1'],
        ['invalid', 'scm2', 'r3', 'm-2'],
        ['opened', 'scm2', 'r3', 'm-2'],
        ['delivered', 'scm2', 'r3', 'm-2'],
        ['invalid', 'scm3', 'r4', undefined],
        ['delivered', 'scm3', 'r4', undefined],
        ['delivered', 'scm4', 'r5', undefined],
      ],
    );
    assert.ok(ev.every((e) => e.event !== 'delivered' || e.reason === undefined));
    assert.equal(ev.find((e) => e.event === 'invalid')?.reason?.code, 'callback_type_16');
    assert.equal(ev[0]?.at, 1552470320982);
  });
  it('accepts a JSON body too', () => {
    const ev = parseXiaomiReceipt({ headers: {}, contentType: 'application/json', rawBody: JSON.stringify({ data: JSON.stringify({ s: { type: 1, targets: 'r' } }) }) });
    assert.equal(ev.length, 1);
  });
  it('malformed bodies throw', () => {
    assert.throws(() => parseXiaomiReceipt(form('{bad')), /not JSON/);
    assert.throws(() => parseXiaomiReceipt({ headers: {}, contentType: 'application/x-www-form-urlencoded', rawBody: 'x=1' }), /missing/);
    assert.throws(() => parseXiaomiReceipt(form({})), /keyed by message id/);
    assert.throws(() => parseXiaomiReceipt(form({ s: { targets: 'r' } })), /entry s/);
    assert.throws(() => parseXiaomiReceipt({ headers: {}, contentType: 'application/json', rawBody: 'nope' }), /not JSON/);
  });
});
