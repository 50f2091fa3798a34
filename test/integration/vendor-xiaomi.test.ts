import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Provider, ProviderContext } from '../../providers/types.js';
import xiaomi from '../../providers/xiaomi.js';
import { startXiaomiMock, type XiaomiMock } from '../mocks/vendors/xiaomi.js';
import { codeOf, ctxFor, dashedTargets, deadPort, kinds, liveContent, WIDE_TUNING } from '../helpers/vendor-fixtures.js';

/**
 * Each provider's `create()` against its mock on an ephemeral HTTPS port (run with
 * NODE_EXTRA_CA_CERTS = the test CA, as `npm test` does). Assertions are on outcomes and on what
 * the mock received, never on timings.
 */

const ctx = (endpoints: Partial<ProviderContext['endpoints']>): ProviderContext => ctxFor(endpoints, WIDE_TUNING);
const content = liveContent();

// ---------------------------------------------------------------------------------------------

describe('xiaomi provider against the mock', () => {
  let mock: XiaomiMock;
  let provider: Provider;
  const callbackUrl = 'https://relay.example/v1/receipts/xiaomi/app-1?secret=s3';

  before(async () => {
    mock = await startXiaomiMock();
    provider = xiaomi.create(
      { appSecret: mock.appSecret, packageName: mock.packageName, categoryMap: { im: { channelId: '108423' } }, callbackUrl },
      ctx({ xiaomi: mock.url }),
    );
  });
  beforeEach(() => {
    mock.resetBehavior();
    mock.requests.length = 0;
  });
  after(async () => {
    await provider.close();
    await mock.close();
  });

  it('sends a form with key= auth; the Xiaomi message id is the providerId', async () => {
    const c = content();
    const out = await provider.send(c, dashedTargets('r1', 'r2'));
    assert.deepEqual(kinds(out), ['sent', 'sent']);
    const rec = mock.sends.at(-1)!;
    assert.deepEqual(out[0], { kind: 'sent', providerId: rec.msgId });
    const req = mock.requests[0]!;
    assert.equal(req.path, '/v3/message/regid');
    assert.equal(req.headers.authorization, `key=${mock.appSecret}`);
    assert.equal(rec.fields.registration_id, 'r1,r2');
    assert.equal(rec.fields['extra.channel_id'], '108423');
    assert.equal(rec.fields['extra.relay_id'], c.messageId);
    assert.equal(rec.fields['extra.callback'], callbackUrl);
    assert.equal(JSON.parse(rec.fields.payload ?? '').relay_id, c.messageId);
  });

  it('bad_regids → invalid; both spellings', async () => {
    const out = await provider.send(content(), dashedTargets('ok', 'invalid-1'));
    assert.deepEqual(kinds(out), ['sent', 'invalid']);
    const m2 = await startXiaomiMock({ badRegIdsField: 'bad_regIds' });
    const p2 = xiaomi.create({ appSecret: m2.appSecret, packageName: m2.packageName }, ctx({ xiaomi: m2.url }));
    try {
      assert.deepEqual(kinds(await p2.send(content(), dashedTargets('invalid-1', 'ok'))), ['invalid', 'sent']);
    } finally {
      await p2.close();
      await m2.close();
    }
  });

  it('rate limit 10027 with Retry-After, server error, fail-first-then-succeed', async () => {
    mock.setBehavior({ retryAfterSec: 2 });
    const rl = await provider.send(content(), dashedTargets('ratelimit-1'));
    assert.equal(rl[0]?.kind, 'retry');
    assert.equal(codeOf(rl[0]), '10027');
    assert.equal((rl[0] as { afterMs?: number }).afterMs, 2000);
    assert.equal((await provider.send(content(), dashedTargets('server-1')))[0]?.kind, 'retry');
    mock.setBehavior({ failFirst: { count: 2, fate: 'rateLimit' } });
    assert.equal((await provider.send(content(), dashedTargets('a')))[0]?.kind, 'retry');
    assert.equal((await provider.send(content(), dashedTargets('a')))[0]?.kind, 'retry');
    assert.equal((await provider.send(content(), dashedTargets('a')))[0]?.kind, 'sent');
  });

  it('daily quota → failed "quota"; payload too large → failed 10018; bad secret → failed 22008', async () => {
    const q = await provider.send(content(), dashedTargets('quota-1'));
    assert.equal(q[0]?.kind, 'failed');
    assert.equal(codeOf(q[0]), 'quota');
    const big = await provider.send(content({ data: { blob: 'x'.repeat(5000) } }), dashedTargets('a'));
    assert.equal(codeOf(big[0]), '10018');
    const wrong = xiaomi.create({ appSecret: 'nope', packageName: mock.packageName }, ctx({ xiaomi: mock.url }));
    const bad = await wrong.send(content(), dashedTargets('a'));
    assert.equal(bad[0]?.kind, 'failed');
    assert.equal(codeOf(bad[0]), '22008');
    await wrong.close();
  });

  it('batches of 250 regIds go out as 100 + 100 + 50, outcomes in order', async () => {
    const toks = Array.from({ length: 250 }, (_, i) => (i % 100 === 99 ? `invalid-${i}` : `r${i}`));
    const out = await provider.send(content(), dashedTargets(...toks));
    const sizes = mock.requests.map((r) => (new URLSearchParams(r.rawBody).get('registration_id') ?? '').split(',').length);
    assert.deepEqual(sizes.sort((a, b) => a - b), [50, 100, 100]);
    out.forEach((o, i) => assert.equal(o.kind, i % 100 === 99 ? 'invalid' : 'sent'));
  });

  it('network failure → retry', async () => {
    const port = await deadPort();
    const p = xiaomi.create({ appSecret: 'a', packageName: 'com.a.b' }, ctx({ xiaomi: `https://127.0.0.1:${port}` }));
    const out = await p.send(content(), dashedTargets('a'));
    assert.equal(out[0]?.kind, 'retry');
    await p.close();
  });

  it('receipts: delivered, clicked and invalid map back to msg id, token and relay id', async () => {
    const c = content();
    const out = await provider.send(c, dashedTargets('r-9'));
    const id = (out[0] as { providerId: string }).providerId;
    for (const [type, event] of [[1, 'delivered'], [2, 'opened'], [16, 'invalid']] as const) {
      const ev = xiaomi.receipts!.parse(mock.receiptFor('r-9', { type }));
      assert.deepEqual(ev.map((e) => [e.event, e.providerId, e.token, e.messageId]), [[event, id, 'r-9', c.messageId]]);
    }
  });
});
