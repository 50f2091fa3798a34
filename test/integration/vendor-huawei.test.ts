import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Provider, ProviderContext } from '../../providers/types.js';
import huawei from '../../providers/huawei.js';
import { startHuaweiMock, type HuaweiMock } from '../mocks/vendors/huawei.js';
import { codeOf, ctxFor, dashedTargets, deadPort, kinds, liveContent, sendPaths, WIDE_TUNING } from '../helpers/vendor-fixtures.js';

/**
 * Each provider's `create()` against its mock on an ephemeral HTTPS port (run with
 * NODE_EXTRA_CA_CERTS = the test CA, as `npm test` does). Assertions are on outcomes and on what
 * the mock received, never on timings.
 */

const ctx = (endpoints: Partial<ProviderContext['endpoints']>): ProviderContext => ctxFor(endpoints, WIDE_TUNING);
const content = liveContent();

// ---------------------------------------------------------------------------------------------

describe('huawei provider against the mock', () => {
  let mock: HuaweiMock;
  let provider: Provider & { tokenFetches?: number };
  const open: Provider[] = [];
  let base = 0;
  /** Tokens the mock issued since this test began (the mock's counter spans the file). */
  const issued = () => mock.tokensIssued - base;

  before(async () => {
    mock = await startHuaweiMock();
  });
  beforeEach(async () => {
    mock.resetBehavior();
    // A fresh credential secret → a fresh shared token cache for every test.
    await provider?.close();
    mock.requests.length = 0;
    base = mock.tokensIssued;
    provider = huawei.create({ appId: mock.appId, clientSecret: mock.clientSecret }, ctx({ huawei: mock.url, huaweiOauth: mock.url }));
    open.push(provider);
  });
  after(async () => {
    for (const p of open) await p.close();
    await mock.close();
  });

  it('sends, with one OAuth token, the documented body, and the request id as providerId', async () => {
    const c = content();
    const out = await provider.send(c, dashedTargets('tok-a', 'tok-b'));
    assert.deepEqual(kinds(out), ['sent', 'sent']);
    const rec = mock.sends.at(-1)!;
    assert.deepEqual(out[0], { kind: 'sent', providerId: rec.requestId });
    const oauth = mock.requests.filter((r) => r.path === '/oauth2/v3/token');
    assert.equal(oauth.length, 1);
    const send = sendPaths(mock.requests)[0]!;
    assert.equal(send.path, `/v1/${mock.appId}/messages:send`);
    assert.match(String(send.headers.authorization), /^Bearer at-/);
    const msg = (rec.body.message ?? {}) as Record<string, any>;
    assert.equal(JSON.parse(msg.data).relay_id, c.messageId);
    assert.equal(msg.android.bi_tag, c.messageId);
    assert.equal(msg.android.category, 'IM');
    // A second send reuses the token.
    await provider.send(content(), dashedTargets('tok-c'));
    assert.equal(issued(), 1);
  });

  it('invalid tokens: partial success (80100000) and all invalid (80300007)', async () => {
    const out = await provider.send(content(), dashedTargets('ok-1', 'invalid-2', 'ok-3'));
    assert.deepEqual(kinds(out), ['sent', 'invalid', 'sent']);
    assert.equal(codeOf(out[1]), '80100000');
    const all = await provider.send(content(), dashedTargets('invalid-a', 'invalid-b'));
    assert.deepEqual(kinds(all), ['invalid', 'invalid']);
    assert.equal(codeOf(all[0]), '80300007');
  });

  it('flow control (503) is retried with Retry-After; server errors retry', async () => {
    mock.setBehavior({ retryAfterSec: 7 });
    const out = await provider.send(content(), dashedTargets('ratelimit-1', 'ok-2'));
    assert.deepEqual(kinds(out), ['retry', 'retry']);
    assert.equal((out[0] as { afterMs?: number }).afterMs, 7000);
    const srv = await provider.send(content(), dashedTargets('server-1'));
    assert.equal(srv[0]?.kind, 'retry');
    assert.equal(codeOf(srv[0]), '81000001');
    // fail first N then succeed
    mock.setBehavior({ failFirst: { count: 1, fate: 'serverError' } });
    assert.equal((await provider.send(content(), dashedTargets('a')))[0]?.kind, 'retry');
    assert.equal((await provider.send(content(), dashedTargets('a')))[0]?.kind, 'sent');
  });

  it('auth expiry → one refresh → success; a second refusal → failed with the auth code', async () => {
    await provider.send(content(), dashedTargets('a'));
    assert.equal(issued(), 1);
    mock.expireAccessTokens();
    const out = await provider.send(content(), dashedTargets('a', 'b'));
    assert.deepEqual(kinds(out), ['sent', 'sent']);
    assert.equal(issued(), 2);
    const sends = sendPaths(mock.requests);
    assert.notEqual(sends.at(-1)!.headers.authorization, sends.at(-2)!.headers.authorization);

    mock.setBehavior({ failFirst: { count: 2, fate: 'authExpired' } });
    const bad = await provider.send(content(), dashedTargets('a'));
    assert.equal(bad[0]?.kind, 'failed');
    assert.equal(codeOf(bad[0]), '80200003');
    assert.equal(issued(), 3, 'exactly one refresh for the refused batch');
  });

  it('batches of more than 1000 tokens are split, outcomes in order', async () => {
    const toks = Array.from({ length: 1500 }, (_, i) => (i % 500 === 7 ? `invalid-${i}` : `tok-${i}`));
    const out = await provider.send(content(), dashedTargets(...toks));
    assert.equal(out.length, 1500);
    const sends = sendPaths(mock.requests);
    assert.equal(sends.length, 2);
    assert.deepEqual(
      sends.map((s) => (JSON.parse(s.rawBody).message.token as string[]).length).sort((a, b) => a - b),
      [500, 1000],
    );
    out.forEach((o, i) => assert.equal(o.kind, i % 500 === 7 ? 'invalid' : 'sent', `token ${i}`));
  });

  it('payload too large → failed 80300008 (real size and scripted)', async () => {
    const big = await provider.send(content({ data: { blob: 'x'.repeat(5000) } }), dashedTargets('a'));
    assert.equal(big[0]?.kind, 'failed');
    assert.equal(codeOf(big[0]), '80300008');
    const scripted = await provider.send(content(), dashedTargets('large-1'));
    assert.equal(codeOf(scripted[0]), '80300008');
  });

  it('N concurrent sends after expiry trigger exactly one token refresh', async () => {
    await provider.send(content(), dashedTargets('warm'));
    assert.equal(issued(), 1);
    mock.expireAccessTokens();
    const outs = await Promise.all(Array.from({ length: 12 }, (_, i) => provider.send(content(), dashedTargets(`c-${i}`))));
    assert.ok(outs.every((o) => o[0]?.kind === 'sent'));
    assert.equal(issued(), 2);
    assert.equal(provider.tokenFetches, 2);
  });

  it('OAuth failures: bad credentials → failed; OAuth 5xx → retry; network → retry; expired → no request', async () => {
    mock.setBehavior({ oauth: 'badCredentials' });
    const bad = await provider.send(content(), dashedTargets('a'));
    assert.equal(bad[0]?.kind, 'failed');
    assert.equal(codeOf(bad[0]), '1101');
    mock.setBehavior({ oauth: 'serverError' });
    assert.equal((await provider.send(content(), dashedTargets('a')))[0]?.kind, 'retry');

    const port = await deadPort();
    const dead = huawei.create({ appId: '1', clientSecret: 'x' }, ctx({ huawei: `https://127.0.0.1:${port}`, huaweiOauth: `https://127.0.0.1:${port}` }));
    open.push(dead);
    const net = await dead.send(content(), dashedTargets('a'));
    assert.equal(net[0]?.kind, 'retry');
    assert.equal(codeOf(net[0]), 'ECONNREFUSED');

    mock.resetBehavior();
    const before = mock.requests.length;
    const exp = await provider.send(content({ expiresAt: Date.now() - 1000 }), dashedTargets('a'));
    assert.equal(codeOf(exp[0]), 'expired');
    assert.equal(mock.requests.length, before);
  });

  it('receipt for a sent message parses back to its request id, token and message id', async () => {
    const c = content();
    const out = await provider.send(c, dashedTargets('r-1'));
    const events = huawei.receipts!.parse(mock.receiptFor('r-1'));
    assert.deepEqual(events.map((e) => [e.event, e.providerId, e.token, e.messageId]), [
      ['delivered', (out[0] as { providerId: string }).providerId, 'r-1', c.messageId],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
