/**
 * Property-based fuzzing of every route in the route table (ROUTES, the list /openapi.json is
 * built from): bodies, queries and path params shaped by the route's own zod schema, mutations of
 * the valid example from test/helpers/route-examples.ts, and hostile headers and raw bodies.
 * Properties: no status ≥ 500, every 4xx in the error envelope, validation errors name the field,
 * no unhandled rejection or uncaught exception, RSS bounded.
 * `FUZZ_RUNS=2000 npm test -- fuzz-api` (or `npm run fuzz`) runs a long campaign.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ROUTES, type RouteDoc } from '../../src/api/define.js';
import { fromSchema, fuzzRuns, headerValue, mutationsOf, nastyValue, toJsonSchema } from '../helpers/fuzz.js';
import { startTestRelay, type TestRelay } from '../helpers/harness.js';
import { EXAMPLES, createFixture, routeKey, type Fixture, type Request } from '../helpers/route-examples.js';

const problems: string[] = [];
const onRejection = (err: unknown) => problems.push(`unhandledRejection: ${String(err)}`);
const onException = (err: unknown) => problems.push(`uncaughtException: ${String(err)}`);

/** Query and path values travel as text: objects and arrays as JSON, the rest as String(). */
const text = (v: unknown) => (typeof v === 'string' ? v : v === undefined ? '' : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

/** Lone surrogates cannot travel in a URL (encodeURIComponent throws): replace them as a browser would. */
const wellFormed = (s: string) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

interface Input {
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body?: unknown;
  /** A raw body sent as is (overrides `body`). */
  raw?: string;
  headers: Record<string, string>;
}

describe('fuzzing every route of the route table', () => {
  let t: TestRelay;
  let f: Fixture;
  let tried = 0;
  let rss0 = 0;
  let maxRss = 0;
  const byStatus: Record<number, number> = {};

  before(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    t = await startTestRelay({ ROLES: 'api', MAX_BODY_BYTES: '65536' });
    f = await createFixture(t);
    rss0 = process.memoryUsage().rss;
  });
  after(async () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    await t?.stop();
    await t?.iso.drop();
  });

  function auth(doc: RouteDoc): string {
    return doc.auth === 'operator' ? f.operator : f.keys.only.admin;
  }

  async function send(doc: RouteDoc, input: Input): Promise<void> {
    const path = doc.path.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(wellFormed(text(input.params[name])) || '_'));
    const q = new URLSearchParams(Object.entries(input.query).map(([k, v]) => [k, text(v)])).toString();
    // fetch cannot send a GET body (and express would not read one).
    const body = doc.method === 'get' ? undefined : (input.raw ?? (input.body === undefined ? undefined : JSON.stringify(input.body)));
    const res = await fetch(`${t.base}${path}${q ? `?${q}` : ''}`, {
      method: doc.method.toUpperCase(),
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...input.headers },
      ...(body !== undefined ? { body } : {}),
    });
    const raw = await res.text();
    tried++;
    byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
    const what = `${routeKey(doc)} ${JSON.stringify({ ...input, raw: input.raw?.slice(0, 200) }).slice(0, 600)}`;
    assert.ok(res.status < 500, `${res.status} for ${what}: ${raw.slice(0, 300)}`);
    // 431: Node's HTTP parser refuses oversized headers itself, before any route runs (no JSON body).
    if (res.status >= 400 && res.status !== 431) {
      let err: { error?: { code?: string; message?: string; details?: { path?: string }[] | null } };
      try {
        err = JSON.parse(raw);
      } catch {
        assert.fail(`${res.status} without a JSON error body for ${what}: ${raw.slice(0, 200)}`);
      }
      assert.equal(typeof err.error?.code, 'string', `error envelope for ${what}`);
      if (err.error!.code === 'validation_failed') {
        assert.match(err.error!.message ?? '', /^(body|query|params|headers)([.[:]|$)/, `the message names the field: ${err.error!.message} for ${what}`);
      }
    }
    const rss = process.memoryUsage().rss;
    if (rss > maxRss) maxRss = rss;
  }

  const schemaInput = (doc: RouteDoc): fc.Arbitrary<Input> =>
    fc.record({
      params: doc.params ? (fromSchema(toJsonSchema(doc.params)) as fc.Arbitrary<Record<string, unknown>>) : fc.constant({}),
      query: doc.query ? (fromSchema(toJsonSchema(doc.query)) as fc.Arbitrary<Record<string, unknown>>) : fc.constant({}),
      body: doc.body ? fromSchema(toJsonSchema(doc.body)) : fc.constant(undefined),
      headers: fc.constant({ authorization: `Bearer ${auth(doc)}` }),
    });

  const mutatedInput = (doc: RouteDoc, ex: Request): fc.Arbitrary<Input> =>
    fc
      .constantFrom('params', 'query', 'body')
      .chain((which) => {
        const base = { params: ex.params ?? {}, query: ex.query ?? {}, body: ex.body };
        const target = base[which as keyof typeof base] ?? {};
        return mutationsOf(target).map((m) => ({
          ...base,
          [which]: which === 'body' ? m : m && typeof m === 'object' && !Array.isArray(m) ? m : { value: m },
          headers: { authorization: `Bearer ${auth(doc)}`, ...(ex.headers ?? {}) },
        })) as fc.Arbitrary<Input>;
      });

  const hostileInput = (doc: RouteDoc, ex: Request): fc.Arbitrary<Input> => {
    const valid = ex.body === undefined ? '{}' : JSON.stringify(ex.body);
    return fc.record({
      params: fc.constant(ex.params ?? {}),
      query: fc.oneof(fc.constant(ex.query ?? {}), fc.dictionary(fc.string({ maxLength: 20 }), nastyValue, { maxKeys: 5 })),
      raw: fc.oneof(
        fc.nat({ max: Math.max(valid.length - 1, 0) }).map((n) => valid.slice(0, n)), // truncated
        fc.string({ maxLength: 200 }),
        fc.constantFrom('null', '[]', '"x"', '1', 'true', '{"a":', '\u0000', '{"__proto__":{"admin":true}}', ' '),
        fc.integer({ min: 1000, max: 20_000 }).map((n) => `{"data":${'['.repeat(n)}${']'.repeat(n)}}`), // deep nesting
        fc.integer({ min: 65_000, max: 70_000 }).map((n) => JSON.stringify({ pad: 'x'.repeat(n) })), // at and over MAX_BODY_BYTES
      ),
      headers: fc.record(
        {
          authorization: fc.oneof(fc.constant(`Bearer ${auth(doc)}`), headerValue),
          'content-type': fc.constantFrom('application/json', 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'application/merge-patch+json', 'multipart/form-data; boundary=x', '*/*', 'application/json; charset=bogus'),
          'idempotency-key': headerValue,
          'content-encoding': fc.constantFrom('identity', 'gzip', 'br', 'bogus'),
        },
        { requiredKeys: ['authorization', 'content-type'] },
      ),
    });
  };

  // Regressions the fuzzer found, each pinned to the exact input.
  test('regression: an event time past the year 9999 is a 400 naming body.at, not a 500 from PostgreSQL', async () => {
    const r = await fetch(`${t.base}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${f.keys.only.push}`, 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: f.deviceA, messageId: 'msg_x', event: 'opened', at: 2922892493378965 }),
    });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /^body\.at:/);
  });

  const runs = fuzzRuns(15);
  // A long campaign (FUZZ_RUNS) outlasts the suite's per-test limit: about 2 s per run of all routes.
  test('regression: a NUL character anywhere (path, query, JSON body, receipt) is a 400 naming the field, not a 500 from PostgreSQL', async () => {
    const call = async (method: string, path: string, body?: string, key = f.keys.only.admin) => {
      const r = await fetch(`${t.base}${path}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(body ? { body } : {}) });
      return { status: r.status, message: ((await r.json()) as { error: { message: string } }).error.message };
    };
    const key = await call('DELETE', `/v1/apps/${f.appA}/keys/%00`);
    assert.equal(key.status, 400);
    assert.match(key.message, /^params\.key: must not contain/);
    const msg = await call('GET', '/v1/messages/msg_%00x');
    assert.match(msg.message, /^params\.id:/);
    const push = await call('POST', '/v1/push', '{"to":{"devices":["d"]},"data":{"k":"a\\u0000b"}}', f.keys.only.push);
    assert.equal(push.status, 400);
    assert.match(push.message, /^body\.data\.k:/);
    const nulKey = await call('POST', '/v1/push', '{"to":{"devices":["d"]},"data":{"a\\u0000":"x"}}', f.keys.only.push);
    assert.match(nulKey.message, /^body\.data\.a/);
    const receipt = await call('POST', `/v1/receipts/huawei/${f.appA}?secret=${f.receiptSecretA}`, '{"statuses":[{"token":"t\\u0000","status":0}]}');
    assert.equal(receipt.status, 400);
    assert.match(receipt.message, /body\[0\]\.token: must not contain/);
  });

  test('regression: JSON nested 20,000 deep is a 400 naming where, not a 500 (stack overflow)', async () => {
    const deep = `{"subject":"mailto:a@example.com","data":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
    for (const [path, key] of [[`/v1/apps/${f.appA}/credentials/webpush`, f.keys.only.admin], ['/v1/push', f.keys.only.push]] as const) {
      const r = await fetch(`${t.base}${path}`, { method: path === '/v1/push' ? 'POST' : 'PUT', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: deep });
      assert.equal(r.status, 400, path);
      assert.match(((await r.json()) as { error: { message: string } }).error.message, /^body\.data(\[0\])+: nested deeper than 64 levels$/);
    }
  });

  test('no input to any route gets a 5xx; errors name the field; nothing unhandled; RSS bounded', { timeout: 120_000 + runs * 4_000 }, async () => {
    const started = Date.now();
    for (const doc of ROUTES) {
      const ex = EXAMPLES[routeKey(doc)];
      assert.ok(ex, `${routeKey(doc)} has no example in test/helpers/route-examples.ts`);
      await f.ensure();
      const req = ex.req(f);
      const opts = { numRuns: runs, endOnFailure: true, includeErrorInReport: true };
      await fc.assert(fc.asyncProperty(schemaInput(doc), (input) => send(doc, input)), opts);
      await fc.assert(fc.asyncProperty(mutatedInput(doc, req), (input) => send(doc, input)), opts);
      await fc.assert(fc.asyncProperty(hostileInput(doc, req), (input) => send(doc, input)), opts);
    }
    await new Promise((r) => setTimeout(r, 200)); // let a stray rejection surface
    const growthMb = Math.round((maxRss - rss0) / 2 ** 20);
    console.log(JSON.stringify({ fuzz: 'api', routes: ROUTES.length, inputs: tried, seconds: (Date.now() - started) / 1000, statuses: byStatus, rssGrowthMb: growthMb, problems: problems.length }));
    assert.deepEqual(problems, []);
    assert.ok(growthMb < 300, `RSS grew ${growthMb} MB`);
    assert.equal(tried, ROUTES.length * runs * 3);
  });
});
