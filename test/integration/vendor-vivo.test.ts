import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Provider } from '../../providers/types.js';
import vivoModule from '../../providers/vivo.js';
import { startVivoMock, type VivoMock } from '../mocks/vendors/vivo.js';
import { codeOf, ctxFor, kinds, liveParcelContent, targets } from '../helpers/vendor-fixtures.js';

// Needs NODE_EXTRA_CA_CERTS=<testPki().caPath> (npm test sets it).

const content = liveParcelContent();

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
    assert.deepEqual([o?.kind, codeOf(o)], ['invalid', '10302']);
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
      assert.ok(first.every((o) => o.kind === 'retry' && codeOf(o) === '10252' && o.afterMs! > 0 && o.afterMs! <= 86_400_000), JSON.stringify(first));
      const before = mock.requests.length;
      const later = await capped.send(content(), targets(Array.from({ length: 1001 }, (_, i) => `l-${i}`)));
      assert.ok(later.slice(0, 1000).every((o) => o.kind === 'retry' && codeOf(o) === '10252'));
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
    assert.deepEqual([c?.kind, codeOf(c)], ['failed', '10056']);
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
      assert.equal(codeOf(out[0]), '10000');
      assert.equal(mock.authCount - auths, 1);
    } finally {
      mock.setBehavior({ rejectAllTokens: false });
    }
  });

  it('payload too large: refused locally; a body the server refuses → failed', async () => {
    const data = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, 'v']));
    const [a] = await provider.send(content({ data }), targets(['r']));
    assert.equal(codeOf(a), 'PayloadTooLarge');
    const [b] = await provider.send(content({ overrides: { vivo: { message: { title: 'x'.repeat(41) } } } }), targets(['r']));
    assert.deepEqual([b?.kind, codeOf(b)], ['failed', '10056']);
  });

  it('bad credentials fail with the vendor code', async () => {
    const bad = vivoModule.create({ appId: mock.appId, appKey: mock.appKey, appSecret: 'nope' }, ctxFor({ vivo: mock.url }));
    try {
      const [o] = await bad.send(content(), targets(['r']));
      assert.deepEqual([o?.kind, codeOf(o)], ['failed', '10206']);
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
