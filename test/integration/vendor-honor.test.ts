import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Provider, ProviderContext } from '../../providers/types.js';
import honor from '../../providers/honor.js';
import { startHonorMock, type HonorMock } from '../mocks/vendors/honor.js';
import { codeOf, ctxFor, dashedTargets, kinds, liveContent, sendPaths, WIDE_TUNING } from '../helpers/vendor-fixtures.js';

/**
 * Each provider's `create()` against its mock on an ephemeral HTTPS port (run with
 * NODE_EXTRA_CA_CERTS = the test CA, as `npm test` does). Assertions are on outcomes and on what
 * the mock received, never on timings.
 */

const ctx = (endpoints: Partial<ProviderContext['endpoints']>): ProviderContext => ctxFor(endpoints, WIDE_TUNING);
const content = liveContent();

// ---------------------------------------------------------------------------------------------

describe('honor provider against the mock', () => {
  let mock: HonorMock;
  let provider: Provider & { tokenFetches?: number };
  const open: Provider[] = [];
  let base = 0;
  const issued = () => mock.tokensIssued - base;
  const make = (m: HonorMock) =>
    honor.create({ appId: m.appId, clientId: m.clientId, clientSecret: m.clientSecret }, ctx({ honor: m.url, honorOauth: m.url }));

  before(async () => {
    mock = await startHonorMock();
  });
  beforeEach(async () => {
    mock.resetBehavior();
    await provider?.close();
    mock.requests.length = 0;
    base = mock.tokensIssued;
    provider = make(mock);
    open.push(provider);
  });
  after(async () => {
    for (const p of open) await p.close();
    await mock.close();
  });

  it('sends with a Bearer token and a timestamp header; requestId is the providerId', async () => {
    const c = content({ options: { ttl: 60, priority: 'normal', category: 'marketing' } });
    const out = await provider.send(c, dashedTargets('a', 'b'));
    assert.deepEqual(kinds(out), ['sent', 'sent']);
    const rec = mock.sends.at(-1)!;
    assert.deepEqual(out[1], { kind: 'sent', providerId: rec.requestId });
    const send = sendPaths(mock.requests)[0]!;
    assert.equal(send.path, `/api/v1/${mock.appId}/sendMessage`);
    assert.match(String(send.headers.authorization), /^Bearer at-/);
    assert.match(String(send.headers.timestamp), /^\d{13}$/);
    assert.equal((rec.body.android as any).notification.importance, 'LOW');
    assert.equal(JSON.parse(rec.body.data as string).relay_id, c.messageId);
    assert.equal(mock.requests.filter((r) => r.path === '/auth/token').length, 1);
  });

  it('mixed batch: expireTokens → invalid, failTokens → retry, the rest sent', async () => {
    const out = await provider.send(content(), dashedTargets('ok', 'invalid-x', 'fail-y', 'ok2'));
    assert.deepEqual(kinds(out), ['sent', 'invalid', 'retry', 'sent']);
    assert.equal(codeOf(out[1]), 'expireTokens');
  });

  it('splits batches at 100 tokens', async () => {
    const toks = Array.from({ length: 250 }, (_, i) => (i === 120 ? 'invalid-120' : `t${i}`));
    const out = await provider.send(content(), dashedTargets(...toks));
    assert.equal(sendPaths(mock.requests).length, 3);
    out.forEach((o, i) => assert.equal(o.kind, i === 120 ? 'invalid' : 'sent'));
  });

  it('rate limit (429 + Retry-After) and server errors retry', async () => {
    mock.setBehavior({ retryAfterSec: 3 });
    const rl = await provider.send(content(), dashedTargets('ratelimit-1'));
    assert.equal(rl[0]?.kind, 'retry');
    assert.equal((rl[0] as { afterMs?: number }).afterMs, 3000);
    assert.equal((await provider.send(content(), dashedTargets('server-1')))[0]?.kind, 'retry');
  });

  it('auth expiry → one refresh → success; persistent refusal → failed', async () => {
    await provider.send(content(), dashedTargets('a'));
    mock.expireAccessTokens();
    assert.deepEqual(kinds(await provider.send(content(), dashedTargets('a'))), ['sent']);
    assert.equal(issued(), 2);
    mock.setBehavior({ failFirst: { count: 2, fate: 'authExpired' } });
    const bad = await provider.send(content(), dashedTargets('a'));
    assert.equal(bad[0]?.kind, 'failed');
    assert.equal(codeOf(bad[0]), '80200003');
    assert.equal(issued(), 3);
  });

  it('payload too large → failed', async () => {
    const out = await provider.send(content({ data: { blob: 'x'.repeat(5000) } }), dashedTargets('a'));
    assert.equal(out[0]?.kind, 'failed');
    assert.equal(codeOf(out[0]), '80300008');
  });

  it('N concurrent sends after expiry trigger exactly one token refresh', async () => {
    await provider.send(content(), dashedTargets('warm'));
    mock.expireAccessTokens();
    const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => provider.send(content(), dashedTargets(`c${i}`))));
    assert.ok(outs.every((o) => o[0]?.kind === 'sent'));
    assert.equal(issued(), 2);
  });

  it('bad client credentials → failed without a send', async () => {
    mock.setBehavior({ oauth: 'badCredentials' });
    const out = await provider.send(content(), dashedTargets('a'));
    assert.equal(out[0]?.kind, 'failed');
    assert.equal(codeOf(out[0]), 'invalid_client');
    assert.equal(sendPaths(mock.requests).length, 0);
  });

  it('falls back to the Keycloak token path and reads a string "200" code', async () => {
    const m2 = await startHonorMock({ oauthPaths: ['/auth/realms/developer/protocol/openid-connect/token'], stringCode: true });
    const p2 = make(m2);
    try {
      const out = await p2.send(content(), dashedTargets('a', 'invalid-b'));
      assert.deepEqual(kinds(out), ['sent', 'invalid']);
      assert.equal(m2.tokensIssued, 1);
      assert.deepEqual(
        m2.requests.filter((r) => r.path.includes('token')).map((r) => r.path),
        ['/auth/token', '/auth/realms/developer/protocol/openid-connect/token'],
      );
    } finally {
      await p2.close();
      await m2.close();
    }
  });

  it('receipt parses back to request id, token and message id', async () => {
    const c = content();
    const out = await provider.send(c, dashedTargets('r-1'));
    const ev = honor.receipts!.parse(mock.receiptFor('r-1'));
    assert.deepEqual(ev.map((e) => [e.event, e.providerId, e.token, e.messageId]), [
      ['delivered', (out[0] as { providerId: string }).providerId, 'r-1', c.messageId],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
