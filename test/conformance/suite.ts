import assert from 'node:assert/strict';
import { describe, test, before, after, type TestContext } from 'node:test';
import { EXPIRED_CODE, type Outcome } from '../../providers/types.js';
import {
  assertSubset,
  message,
  send,
  summary,
  type AdapterFactory,
  type BatchKind,
  type ConformanceAdapter,
  type ScenarioId,
} from './harness.js';

/**
 * The conformance scenarios, the same for every channel: `conformanceSuite(adapters)` registers
 * one `describe` per adapter. providers.test.ts runs it over every registered channel;
 * toy-channel.test.ts over a channel defined only in that test.
 */

const TITLES: Record<ScenarioId, string> = {
  success: '1. success: one token → sent, with the providerId the channel returned',
  invalid: '2. invalid token → invalid with the provider code and evidence',
  retryAfter: '3. rate limited with Retry-After → retry, afterMs ≥ Retry-After',
  authExpiry: '4. auth expiry → exactly one refresh, then sent (or the documented failed class)',
  batch: '5. mixed batch → one outcome per target, in target order (across chunks)',
  payloadTooLarge: '6. payload too large → failed, refused locally where the provider checks',
  expired: '7. expired content → expired, nothing sent',
  neverThrows: '8. mock closed → send() resolves, one retry per target (transport error)',
};

/**
 * A data map over every vendor's limit (APNs/FCM/Huawei 4096 B, vivo 1024 chars…). The self
 * channel carries it (its limit is the gateway's 256 KiB packet): its adapter brings its own.
 */
const TOO_LARGE = { blob: 'x'.repeat(5000) };

const SCENARIO_FNS: Record<ScenarioId, (a: ConformanceAdapter, t: TestContext, factory: AdapterFactory) => Promise<void>> = {
  async success(a) {
    const token = a.ok();
    const before = a.sendRequests();
    const content = message();
    const [o] = await send(a.provider, content, [token]);
    assert.equal(o?.kind, 'sent', JSON.stringify(o));
    assert.equal(a.sendRequests() - before, 1, 'exactly one send request reached the mock');
    if (a.providerId) {
      const want = a.providerId(token);
      const got = o.kind === 'sent' ? o.providerId : undefined;
      assert.ok(got, 'a providerId is reported');
      if (typeof want === 'string') assert.equal(got, want, 'the providerId is the one the mock answered');
      else assert.match(got, want);
    }
    await a.confirm?.(content, [token], [o!]);
  },

  async invalid(a) {
    const c = a.invalid();
    const [o] = await send(a.provider, message(), [c.token]);
    assert.equal(o?.kind, 'invalid', JSON.stringify(o));
    assert.equal(o.reason.code, c.code);
    assert.ok(o.reason.message.length > 0, 'a human message');
    assertSubset(o.reason.evidence, c.evidence, 'invalid');
  },

  async retryAfter(a, t) {
    const c = a.retryAfter();
    if ('notApplicable' in c) return t.skip(`n/a: ${c.notApplicable}`);
    const [o] = await send(a.provider, message(), [c.token]);
    assert.equal(o?.kind, 'retry', JSON.stringify(o));
    assert.equal(o.reason.code, c.code);
    if (c.hidden) {
      t.diagnostic(`Retry-After (${c.retryAfterSec} s) is sent by the mock but cannot reach the provider: ${c.hidden}`);
      return;
    }
    assert.ok(o.afterMs !== undefined, `afterMs is set from Retry-After: ${JSON.stringify(o)}`);
    assert.ok(o.afterMs >= c.retryAfterSec * 1000, `afterMs ${o.afterMs} ≥ Retry-After ${c.retryAfterSec} s`);
  },

  async authExpiry(shared, t, factory) {
    if ('notApplicable' in shared.authExpiry) return t.skip(`n/a: ${shared.authExpiry.notApplicable}`);
    // A fresh mock and provider: a provider stuck on a refused token must not spoil the other scenarios.
    const a = factory();
    t.after(() => a.close());
    await a.start();
    const auth = a.authExpiry;
    assert.ok(!('notApplicable' in auth));
    // A token is obtained and cached first, so what follows is a refresh, not a first fetch.
    const [warm] = await send(a.provider, message(), [a.ok()]);
    assert.equal(warm?.kind, 'sent', `warm-up: ${JSON.stringify(warm)}`);

    const r0 = auth.refreshes();
    const s0 = a.sendRequests();
    const token = await auth.arm();
    const [o] = await send(a.provider, message(), [token]);
    const refreshed = auth.refreshes() - r0;
    const requests = a.sendRequests() - s0;
    // The next message must go out with the refreshed token, without another refresh.
    const [next] = await send(a.provider, message(), [a.ok()]);
    t.diagnostic(`after the expiry: ${summary([o!])[0]}, ${refreshed} refresh(es), ${requests} send request(s); next message: ${summary([next!])[0]}`);

    assert.equal(o?.kind, 'sent', `after a refresh the send succeeds; got ${JSON.stringify(o)}`);
    assert.equal(refreshed, 1, 'the mock saw exactly one refresh');
    assert.equal(requests, auth.requestsPerToken, 'the refused request and exactly one re-send');
    assert.equal(next?.kind, 'sent', JSON.stringify(next));
    assert.equal(auth.refreshes() - r0, 1, 'the refreshed token is reused');

    if (auth.persistent) {
      const p = auth.persistent;
      const s1 = a.sendRequests();
      const [f] = await send(a.provider, message(), [await p.arm()]);
      assert.deepEqual(summary([f!]), [`${p.expect.kind}:${p.expect.code}`], 'a refusal that survives the refresh ends in its documented class');
      assert.equal(a.sendRequests() - s1, p.requestsPerToken, 'no more than one re-send');
    }
  },

  async batch(a, t) {
    const pattern: BatchKind[] = ['ok', 'invalid', 'retry', 'ok', 'failed', 'invalid', 'ok', 'retry', 'ok'];
    const spec = a.batch;
    const expected: string[] = [];
    const tokens: string[] = [];
    const missing = new Set<BatchKind>();
    const add = (kind: BatchKind, forced?: string): void => {
      const s = a.batchToken(kind);
      if (!s) {
        missing.add(kind);
        return;
      }
      tokens.push(s.token);
      if (forced) expected.push(forced);
      else expected.push(kind === 'ok' ? 'sent' : `${kind}:${s.code ?? '?'}`);
    };
    if (spec.chunkSize > 1) {
      // A full first chunk, so the outcomes of two requests must be stitched back in order.
      const first = spec.retryScope === 'request' ? pattern.filter((k) => k !== 'retry') : pattern;
      for (let i = 0; tokens.length < spec.chunkSize && i < 10 * spec.chunkSize; i++) add(first[i % first.length]!);
      assert.equal(tokens.length, spec.chunkSize, 'the adapter filled the first chunk');
    }
    if (spec.retryScope === 'request') {
      // The vendor refuses the whole request: every target of this chunk is retried.
      for (const k of ['retry', 'ok', 'invalid', 'ok'] as const) add(k, `retry:${spec.requestRetryCode}`);
    } else {
      for (const k of pattern) add(k);
    }
    if (missing.size) t.diagnostic(`the ${a.channel} mock cannot script these kinds per target: ${[...missing].join(', ')}`);
    const tail = expected.slice(spec.chunkSize > 1 ? spec.chunkSize : 0);
    // Three outcome classes at least, or every class the channel has per target (self: sent, invalid).
    const classes = Math.min(3, 4 - missing.size);
    assert.ok(tail.length >= 4 && new Set(expected).size >= classes, `a meaningful mix: ${expected.join(', ')}`);

    const content = message();
    const out = await send(a.provider, content, tokens);
    const got = summary(out);
    // Compare in full, but keep a failure message readable for 1000-target batches.
    const firstDiff = got.findIndex((g, i) => g !== expected[i]);
    assert.equal(firstDiff, -1, `outcome ${firstDiff} of ${tokens.length}: expected ${expected[firstDiff]}, got ${got[firstDiff]} (${JSON.stringify(out[firstDiff])})`);
    assert.deepEqual(got, expected);
    await a.confirm?.(content, tokens, out);
  },

  async payloadTooLarge(a, t) {
    const p = a.payloadTooLarge;
    if ('notApplicable' in p) return t.skip(`n/a: ${p.notApplicable}`);
    const before = a.sendRequests();
    const out = await send(a.provider, message({ data: p.data ?? TOO_LARGE }), [a.ok(), a.ok()]);
    assert.deepEqual(summary(out), [`failed:${p.code}`, `failed:${p.code}`]);
    const requests = a.sendRequests() - before;
    if (p.local) {
      assert.equal(requests, 0, 'refused before any request reached the mock');
    } else {
      assert.ok(requests >= 1, 'the vendor (mock) refused it');
      t.diagnostic(`not checked locally (${requests} request(s) reached the mock): ${p.why ?? ''}`);
    }
  },

  async expired(a) {
    const before = a.sendRequests();
    const expiresAt = Date.now() - 1000;
    const out = await send(a.provider, message({ expiresAt }), [a.ok(), a.ok(), a.ok()]);
    assert.deepEqual(summary(out), [`expired:${EXPIRED_CODE}`, `expired:${EXPIRED_CODE}`, `expired:${EXPIRED_CODE}`]);
    assert.equal(a.sendRequests() - before, 0, 'nothing was sent');
  },

  async neverThrows(_a, t, factory) {
    // A fresh mock and provider, so closing this mock leaves the shared one alone.
    const b = factory();
    t.after(() => b.close());
    await b.start();
    const [warm] = await send(b.provider, message(), [b.ok()]);
    assert.equal(warm?.kind, 'sent', `warm-up: ${JSON.stringify(warm)}`);
    assert.deepEqual(await send(b.provider, message(), []), [], 'no targets → no outcomes');
    const tokens = [b.ok(), b.ok(), b.ok(), b.ok()];
    await b.closeMock();
    const out: Outcome[] = await send(b.provider, message(), tokens);
    for (const o of out) {
      assert.equal(o.kind, 'retry', `a transport error is retryable: ${JSON.stringify(o)}`);
      assert.ok(o.reason.code.length > 0 && o.reason.message.length > 0, 'with a code and a message');
    }
  },
};

export function conformanceSuite(adapters: Readonly<Record<string, AdapterFactory | undefined>>): void {
  for (const [channel, factory] of Object.entries(adapters)) {
    if (!factory) continue;
    describe(`${channel} provider conformance`, () => {
      const a = factory();
      before(() => a.start());
      after(() => a.close());
      for (const [id, fn] of Object.entries(SCENARIO_FNS) as Array<[ScenarioId, (typeof SCENARIO_FNS)[ScenarioId]]>) {
        const gap = a.gaps?.[id];
        const run = (t: TestContext) => fn(a, t, factory);
        if (gap) test(TITLES[id], { todo: `PROVIDER GAP: ${gap}` }, run);
        else test(TITLES[id], run);
      }
    });
  }
}
