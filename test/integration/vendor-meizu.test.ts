import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import meizuModule from '../../providers/meizu.js';
import type { Provider } from '../../providers/types.js';
import { startMeizuMock, type MeizuMock } from '../mocks/vendors/meizu.js';
import { codeOf, ctxFor, kinds, liveParcelContent, targets } from '../helpers/vendor-fixtures.js';

// Needs NODE_EXTRA_CA_CERTS=<testPki().caPath> (npm test sets it).

const content = liveParcelContent();

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
    assert.equal(codeOf(out[3]), 'quota');
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
    assert.deepEqual([a?.kind, codeOf(a)], ['failed', '1005']);
    const bad = meizuModule.create({ appId: mock.appId, appSecret: 'wrong' }, ctxFor({ meizu: mock.url }));
    try {
      const [b] = await bad.send(content(), targets(['r']));
      assert.deepEqual([b?.kind, codeOf(b)], ['failed', '1006']);
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
