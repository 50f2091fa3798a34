import assert from 'node:assert/strict';
import { once as onceEvent } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { pino } from 'pino';
import { z } from 'zod';
import {
  channelConfigShape,
  deriveDeviceTokensSchema,
  deriveOverridesSchema,
  providerContextFrom,
  providerModule,
  registerChannel,
} from '../../providers/channels.js';
import {
  channelOverrides,
  endpointOf,
  expired,
  failed,
  invalid,
  retry,
  sent,
  type EndpointSetting,
  type Outcome,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type PushContent,
  type SendTarget,
} from '../../providers/types.js';
import { sendInChunks } from '../../providers/shared/batches.js';
import { remainingTtlSeconds } from '../../providers/shared/expiry.js';
import { networkRetry, retryAfterMs, vendorFetchJson } from '../../providers/shared/http.js';
import { createLimiter } from '../../providers/shared/limiter.js';
import { once, type BatchKind, type ConformanceAdapter } from './harness.js';
import { conformanceSuite } from './suite.js';

/**
 * A channel defined only in this file: its module (what docs/adding-a-channel.md asks of a new
 * vendor), its mock and its conformance adapter. Registering it is all it takes for the registry,
 * the config, the request schemas and the conformance suite to know it.
 */

// ---- the module ------------------------------------------------------------------------------

const TOY_ENDPOINTS = {
  toy: { env: 'TOY_ENDPOINT', default: 'https://push.toy.example', doc: 'Toy push API' },
} as const satisfies Record<string, EndpointSetting>;
const TOY_BATCH = 3;
const TOY_MAX_BYTES = 2048;

const toyCredentialSchema = z.strictObject({ apiKey: z.string().min(8) });
type ToyCredential = z.infer<typeof toyCredentialSchema>;
const toyOverridesSchema = z.strictObject({ sound: z.enum(['ding', 'none']).optional() });

class ToyProvider implements Provider {
  readonly channel = 'toy';
  private readonly limiter = createLimiter(4);
  private readonly url: string;
  constructor(
    private readonly cred: ToyCredential,
    ctx: ProviderContext,
  ) {
    this.url = `${endpointOf(ctx, TOY_ENDPOINTS, 'toy')}/send`;
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (targets.length === 0) return [];
    if (remainingTtlSeconds(content.expiresAt) <= 0) return targets.map(() => expired(content.expiresAt));
    const body = { title: content.notification?.title, data: content.data, ...channelOverrides<z.infer<typeof toyOverridesSchema>>(content, 'toy') };
    const bytes = Buffer.byteLength(JSON.stringify(body));
    if (bytes > TOY_MAX_BYTES) return targets.map(() => failed({ code: 'PayloadTooLarge', message: `${bytes} bytes; toy allows ${TOY_MAX_BYTES}` }));
    return sendInChunks(targets, TOY_BATCH, this.limiter, async (chunk) => {
      const res = await vendorFetchJson(this.url, { ...body, tokens: chunk.map((t) => t.token) }, { headers: { authorization: `Key ${this.cred.apiKey}` } });
      if (!res.ok) return chunk.map(() => networkRetry(res));
      const results = (res.json as { results?: { id?: string; error?: string }[] }).results ?? [];
      return chunk.map((_, i) => {
        const r = results[i];
        if (r?.id) return sent(r.id);
        const reason = { code: r?.error ?? 'missing_result', message: `toy answered ${r?.error ?? 'nothing'}`, evidence: { status: res.status } };
        if (r?.error === 'Unregistered') return invalid(reason);
        if (r?.error === 'Busy') return retry(reason, retryAfterMs(res.headers));
        return failed(reason);
      });
    });
  }

  async close(): Promise<void> {}
}

const toyModule = {
  channel: 'toy' as const,
  credentialSchema: toyCredentialSchema,
  overridesSchema: toyOverridesSchema,
  tokenSchema: z.string().regex(/^[a-z]+-\d+$/, 'a toy token is word-number'),
  endpoints: TOY_ENDPOINTS,
  batchMax: TOY_BATCH,
  describe: () => ({}),
  create: (cred, ctx) => new ToyProvider(cred, ctx),
} satisfies ProviderModule<ToyCredential>;

// ---- the mock --------------------------------------------------------------------------------

async function startToyMock(): Promise<{ url: string; requests: string[][]; close(): Promise<void> }> {
  const requests: string[][] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const { tokens } = JSON.parse(raw) as { tokens: string[] };
      requests.push(tokens);
      const results = tokens.map((t) => (t.startsWith('ok') ? { id: `toy-${++n}` } : t.startsWith('dead') ? { error: 'Unregistered' } : t.startsWith('busy') ? { error: 'Busy' } : { error: 'Rejected' }));
      res.writeHead(200, { 'content-type': 'application/json', ...(tokens.some((t) => t.startsWith('busy')) ? { 'retry-after': '7' } : {}) });
      res.end(JSON.stringify({ results }));
    });
  });
  server.listen(0, '127.0.0.1');
  await onceEvent(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// ---- the adapter -----------------------------------------------------------------------------

function toyAdapter(): ConformanceAdapter {
  let mock: Awaited<ReturnType<typeof startToyMock>> | undefined;
  let provider: Provider | undefined;
  let n = 0;
  const tok = (p: string) => `${p}-${++n}`;
  const closeMock = once(async () => mock?.close());
  return {
    channel: 'toy',
    async start() {
      mock = await startToyMock();
      // As the worker role builds it: config values → provider context → the module's create().
      const ctx = providerContextFrom({ TOY_ENDPOINT: mock.url }, { logger: pino({ level: 'silent' }) }, [toyModule]);
      const mod = providerModule('toy')!;
      provider = mod.create(mod.credentialSchema.parse({ apiKey: 'toy-secret-key' }), ctx);
    },
    get provider() {
      if (!provider) throw new Error('adapter not started');
      return provider;
    },
    sendRequests: () => mock?.requests.length ?? 0,
    closeMock,
    async close() {
      await provider?.close();
      await closeMock();
    },
    ok: () => tok('ok'),
    providerId: () => /^toy-\d+$/,
    invalid: () => ({ token: tok('dead'), code: 'Unregistered', evidence: { status: 200 } }),
    retryAfter: () => ({ token: tok('busy'), code: 'Busy', retryAfterSec: 7 }),
    authExpiry: { notApplicable: 'the toy channel authenticates every request with a static key' },
    batchToken(kind: BatchKind) {
      const prefix = { ok: 'ok', invalid: 'dead', retry: 'busy', failed: 'bad' }[kind];
      const code = { ok: undefined, invalid: 'Unregistered', retry: 'Busy', failed: 'Rejected' }[kind];
      return { token: tok(prefix), ...(code ? { code } : {}) };
    },
    batch: { chunkSize: TOY_BATCH, retryScope: 'token' },
    payloadTooLarge: { code: 'PayloadTooLarge', local: true },
  };
}

// ---- the tests -------------------------------------------------------------------------------

registerChannel(toyModule);

test('a registered toy channel gets its config variable, context, device token and overrides schemas from its module alone', () => {
  const shape = channelConfigShape([toyModule]);
  assert.deepEqual(Object.keys(shape), ['TOY_ENDPOINT']);
  assert.equal(z.object(shape).parse({}).TOY_ENDPOINT, 'https://push.toy.example');
  assert.equal(providerContextFrom({}, { logger: pino({ level: 'silent' }) }, [toyModule]).endpoints.toy, 'https://push.toy.example');

  const tokens = deriveDeviceTokensSchema([toyModule]);
  assert.equal(tokens.parse({ toy: 'abc-1' }).toy, 'abc-1');
  assert.deepEqual(tokens.safeParse({ toy: 'ABC' }).error?.issues[0]?.path, ['toy']);

  const overrides = deriveOverridesSchema([toyModule]);
  assert.ok(overrides.safeParse({ toy: { sound: 'ding' } }).success);
  const bad = overrides.safeParse({ toy: { typo: 1 } });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error?.issues[0]?.path, ['toy']);
  assert.throws(() => registerChannel(toyModule), /already registered/);
});

conformanceSuite({ toy: toyAdapter });
