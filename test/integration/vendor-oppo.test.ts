import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import oppoModule from '../../providers/oppo.js';
import type { Provider } from '../../providers/types.js';
import { startOppoMock, type OppoMock } from '../mocks/vendors/oppo.js';
import { CLOSED, codeOf, ctxFor, kinds, liveParcelContent, targets } from '../helpers/vendor-fixtures.js';

// Needs NODE_EXTRA_CA_CERTS=<testPki().caPath> (npm test sets it).

const content = liveParcelContent();

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
    assert.deepEqual(out.map(codeOf), [undefined, '10000', 'quota', '-2', undefined]);
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
    assert.deepEqual(out.map(codeOf), ['10000', '10000', '10000']);
  });

  it('a 私信 category without a channel goes out unclassified; the mock refuses one sent anyway (67)', async () => {
    const bare = oppoModule.create({ appKey: mock.appKey, masterSecret: mock.masterSecret }, ctxFor({ oppo: mock.url }));
    try {
      const [a] = await bare.send(content(), targets(['pm-1']));
      assert.equal(a?.kind, 'sent');
      const n = mock.requests.filter((r) => r.path.endsWith('/unicast')).at(-1)?.messages?.[0]?.notification as Record<string, unknown>;
      assert.deepEqual([n.channel_id, n.category, n.notify_level], [undefined, undefined, undefined]);
      const [b] = await bare.send(content({ overrides: { oppo: { notification: { category: 'IM' } } } }), targets(['pm-2']));
      assert.deepEqual([b?.kind, codeOf(b)], ['failed', '67']);
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
      assert.deepEqual(out.map(codeOf), ['11', '11']);
      assert.deepEqual(kinds(out), ['failed', 'failed']);
      assert.equal(mock.authCount - auths, 1);
    } finally {
      mock.setBehavior({ rejectAllTokens: false });
    }
  });

  it('payload too large: refused locally; a body the server refuses → failed', async () => {
    const sends = mock.sendCount;
    const [a] = await provider.send(content({ data: { blob: 'x'.repeat(5000) } }), targets(['r']));
    assert.equal(codeOf(a), 'PayloadTooLarge');
    const [b] = await provider.send(content({ overrides: { oppo: { notification: { content: 'y'.repeat(60), style: 1 } } } }), targets(['r']));
    assert.deepEqual([b?.kind, codeOf(b)], ['failed', '41']);
    assert.equal(mock.sendCount, sends);
  });

  it('a wrong master secret fails with the auth code; an unreachable host retries', async () => {
    const bad = oppoModule.create({ appKey: mock.appKey, masterSecret: 'wrong' }, ctxFor({ oppo: mock.url }));
    const down = oppoModule.create({ appKey: 'k', masterSecret: 's' }, ctxFor({ oppo: CLOSED }));
    try {
      const [a] = await bad.send(content(), targets(['r']));
      assert.deepEqual([a?.kind, codeOf(a)], ['failed', '16']);
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
