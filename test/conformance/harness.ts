import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { providerModule } from '../../providers/channels.js';
import type { Outcome, Provider, ProviderContext, PushContent, SendTarget } from '../../providers/types.js';
import { testPki } from '../mocks/tls.js';
import { providerContext } from '../helpers/provider-context.js';

/**
 * The contract between the shared conformance scenarios (providers.test.ts) and one adapter per
 * provider (adapters/<channel>.ts). An adapter knows its mock: how to start it, which token makes
 * it answer what, how to force an auth expiry and how to count what reached it. The scenarios
 * know nothing provider-specific. (The self channel has no mock: its adapter runs a Relay with its
 * gateway and real MQTT devices; see adapters/self.ts.)
 */

/** The scenario ids, in the order they run. */
export const SCENARIOS = ['success', 'invalid', 'retryAfter', 'authExpiry', 'batch', 'payloadTooLarge', 'expired', 'neverThrows'] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

/** What a non-`sent` outcome must look like. */
export interface Expected {
  kind: Exclude<Outcome['kind'], 'sent'>;
  code: string;
}

/** A token the mock answers in a known way, and the outcome code the provider must give it. */
export interface Scripted {
  token: string;
  /** Expected `reason.code` (for non-sent kinds). */
  code?: string;
}

/** The kinds a mixed batch is built from. */
export type BatchKind = 'ok' | 'invalid' | 'retry' | 'failed';

export interface RetryAfterCase {
  token: string;
  /** Expected `reason.code` of the `retry`. */
  code: string;
  /** The Retry-After (seconds) the mock sends. */
  retryAfterSec: number;
  /**
   * Set when the provider's client cannot see Retry-After (so `afterMs` cannot honour it): the
   * scenario then asserts `retry` and this code only, and prints the reason.
   */
  hidden?: string;
}

export interface AuthExpiryCase {
  /** Forces the credential's current auth token to be refused as expired on its next use; returns the token to send. */
  arm(): Promise<string> | string;
  /** Auth tokens the mock has issued (or, for APNs, distinct provider JWTs it has seen) so far. */
  refreshes(): number;
  /**
   * A persistent auth failure (the refresh does not help) and its documented `failed` class,
   * where the channel defines one (APNs: `ExpiredProviderToken` after the one re-send).
   */
  persistent?: { arm(): Promise<string> | string; expect: Expected; requestsPerToken: number };
  /** Send requests the mock must see for the armed token: the refused one and the one re-send. */
  requestsPerToken: number;
}

export interface ConformanceAdapter {
  readonly channel: string;
  /**
   * Starts the mock (ephemeral port) and creates the provider through its ProviderModule (a
   * built-in channel: through the provider registry of a running Relay, as the send worker does).
   */
  start(): Promise<void>;
  readonly provider: Provider;
  /** Send requests (auth / token requests excluded) the mock has recorded so far. */
  sendRequests(): number;
  /** Closes only the mock (scenario `neverThrows`); idempotent. */
  closeMock(): Promise<void>;
  /** Closes the provider and the mock; idempotent. */
  close(): Promise<void>;

  /** 1. A token the mock accepts, and the providerId the provider must report for it (checked after the send). */
  ok(): string;
  providerId?(token: string): string | RegExp;
  /** 2. A token the mock declares dead, the provider's code and evidence it must carry (subset; RegExp values match). */
  invalid(): Scripted & { evidence: Record<string, unknown> };
  /**
   * 3. A token the mock rate-limits with Retry-After (the adapter scripts the mock as needed), or
   * why the channel has nothing upstream that throttles.
   */
  retryAfter(): RetryAfterCase | { notApplicable: string };
  /** 4. Auth expiry, or why the channel has no auth token that can expire. */
  authExpiry: AuthExpiryCase | { notApplicable: string };
  /**
   * 5. Tokens for a mixed batch (undefined: the mock cannot script that kind per token).
   * `retryScope: 'request'` means the vendor rate-limits whole requests: a retry token makes its
   * whole chunk of `chunkSize` targets `retry` (with `requestRetryCode`).
   */
  batchToken(kind: BatchKind): Scripted | undefined;
  batch: { chunkSize: number; retryScope: 'token' } | { chunkSize: number; retryScope: 'request'; requestRetryCode: string };
  /**
   * 6. The payload-too-large code, and whether the provider refuses it before any request. `data`:
   * the channel's own oversized data map, when the shared one (5000 B) fits the channel.
   */
  payloadTooLarge: { code: string; local: boolean; why?: string; data?: Record<string, unknown> } | { notApplicable: string };
  /**
   * Where the adapter sees past the provider (the self channel's devices): checks after the
   * `success` and `batch` sends that each target really got the message, or holds it, as its
   * outcome says. Rejects on a mismatch.
   */
  confirm?(content: PushContent, tokens: readonly string[], outcomes: readonly Outcome[]): Promise<void>;
  /**
   * Known provider gaps (the lead fixes the provider): the scenario still runs, as a `todo`, so
   * its output shows the behaviour observed; it does not fail the suite.
   */
  gaps?: Partial<Record<ScenarioId, string>>;
}

export type AdapterFactory = () => ConformanceAdapter;

// ---------------------------------------------------------------------------------------------
// Shared helpers for adapters
// ---------------------------------------------------------------------------------------------

/** A ProviderContext whose endpoints for this adapter's channel point at its mock (the others refuse connections). */
export function context(endpoints: Partial<ProviderContext['endpoints']>, extra: Record<string, unknown> = {}): ProviderContext {
  const ctx = providerContext({ endpoints, tls: { ca: testPki().caPem }, tuning: { apnsMaxStreams: 100, apnsConnections: 1, fcmConcurrency: 8 } });
  return Object.assign(ctx, extra);
}

/** Creates a provider the way the registry does: schema-parse the credential, then `create()`. */
export function createProvider(channel: string, credential: unknown, ctx: ProviderContext): Provider {
  const mod = providerModule(channel);
  if (!mod) throw new Error(`no ProviderModule registered for ${channel}`);
  let cred = mod.credentialSchema.parse(credential);
  if (mod.complete) cred = mod.complete(cred);
  mod.checkCredential?.(cred);
  return mod.create(cred, ctx);
}

/** Runs `fn` once; later calls return the first call's promise. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

// ---------------------------------------------------------------------------------------------
// Helpers for the scenarios
// ---------------------------------------------------------------------------------------------

/** A message every provider can carry (a notification with title and body, small data). */
export function message(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: `conf-${randomUUID()}`,
    notification: { title: 'Order shipped', body: 'Your parcel is on its way' },
    data: { orderId: '42' },
    options: { ttl: 3600, priority: 'high' },
    expiresAt: Date.now() + 3_600_000,
    ...over,
  };
}

export const targetsOf = (tokens: readonly string[]): SendTarget[] => tokens.map((token, i) => ({ deliveryId: `d-${i}`, token }));

export const codeOf = (o: Outcome | undefined): string | undefined => (o && o.kind !== 'sent' ? o.reason.code : undefined);

/** `kind:code` per outcome, for readable deepEqual failures. */
export const summary = (outs: readonly Outcome[]): string[] => outs.map((o) => (o.kind === 'sent' ? 'sent' : `${o.kind}:${o.reason.code}`));

/**
 * `provider.send()` under the contract every scenario relies on: it resolves (never rejects) and
 * answers exactly one outcome per target.
 */
export async function send(provider: Provider, content: PushContent, tokens: readonly string[]): Promise<Outcome[]> {
  let out: Outcome[];
  try {
    out = await provider.send(content, targetsOf(tokens));
  } catch (err) {
    assert.fail(`send() threw instead of answering outcomes: ${(err as Error)?.stack ?? String(err)}`);
  }
  assert.ok(Array.isArray(out), 'send() answers an array');
  assert.equal(out.length, tokens.length, 'one outcome per target');
  for (const o of out) assert.ok(o && ['sent', 'retry', 'invalid', 'failed', 'expired'].includes(o.kind), `a valid Outcome: ${JSON.stringify(o)}`);
  return out;
}

/** Every key of `want` is in `got` with an equal value (RegExp: matches String(value)). */
export function assertSubset(got: Record<string, unknown> | undefined, want: Record<string, unknown>, what: string): void {
  assert.ok(got && typeof got === 'object', `${what}: evidence present`);
  for (const [k, v] of Object.entries(want)) {
    if (v instanceof RegExp) assert.match(String(got[k]), v, `${what}: evidence.${k}`);
    else assert.deepEqual(got[k], v, `${what}: evidence.${k}`);
  }
}
