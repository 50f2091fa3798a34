import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Outcome } from '../../providers/types.js';
import { chunk, sendInChunks } from '../../providers/shared/batches.js';
import { clickTarget } from '../../providers/shared/click.js';
import { remainingTtlSeconds } from '../../providers/shared/expiry.js';
import { retryAfterMs } from '../../providers/shared/http.js';
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
import { huaweiClass } from '../../providers/huawei.js';
import { honorClass } from '../../providers/honor.js';
import { xiaomiClass } from '../../providers/xiaomi.js';
import { FIXED_NOW, kinds, orderContentAt } from '../helpers/vendor-fixtures.js';

const NOW = FIXED_NOW;
const content = orderContentAt(NOW);

// ---------------------------------------------------------------------------------------------

describe('providers/shared: TokenCache', () => {
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

describe('providers/shared: helpers', () => {
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

describe('providers/shared: category mapping', () => {
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
