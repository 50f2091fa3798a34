import { rootCertificates } from 'node:tls';
import apn from '@parse/node-apn';
import type { MultiProviderOptions, Notification as ApnNotification } from '@parse/node-apn';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  failed,
  invalid,
  retry,
  type Outcome,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type PushContent,
  type SendTarget,
  RELAY_CODES,
  type EndpointSetting,
  type TuningSetting,
  tuningOf,
} from '../types.js';
import { Semaphore } from '../shared/limiter.js';
import { type ApnsResult, classifyApnsResult } from './classify.js';
import { type ApnsCredential, apnsAuthType, apnsCredentialSchema, checkApnsCredential, describeApnsCredential } from './credential.js';
import { type ApnsRequest, apnsOverridesSchema, buildApnsRequest, isApnsTokenSyntax } from './message.js';

export * from './classify.js';
export * from './credential.js';
export * from './message.js';

/**
 * APNs channel: Apple's HTTP/2 provider API through `@parse/node-apn` 8.x.
 *
 * - One long-lived node-apn client per credential (`Provider`, or `MultiProvider` when
 *   `APNS_CONNECTIONS` > 1), `connectionRetryLimit: 0`: Relay retries per token with its own
 *   backoff; node-apn would otherwise hammer a 429 four times in a row (it cannot read
 *   `Retry-After`).
 * - In-flight HTTP/2 streams are bounded by one semaphore per provider instance
 *   (`APNS_MAX_STREAMS` × connections permits), shared by every concurrent `send()`.
 * - Everything that can be decided without the network (topic, priority, expiry, collapse id,
 *   payload size, token syntax) is decided by the pure `buildApnsRequest`; every APNs answer is
 *   classified by the pure `classifyApnsResult`.
 */

/**
 * An optional extra the APNs provider reads from its `ProviderContext` (not in `types.ts`):
 * `apnsRequestTimeoutMs`, node-apn's `requestTimeout` (default 5000), so tests can shorten it.
 * (`ctx.tls.ca`, from types.ts, is added to Node's bundled roots; production trusts private CAs
 * through NODE_EXTRA_CA_CERTS instead.)
 */
export interface ApnsContextExtras {
  apnsRequestTimeoutMs?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

type ApnClient = InstanceType<typeof apn.Provider> | InstanceType<typeof apn.MultiProvider>;

/** Builds the node-apn options for a credential and context (exported for tests). */
export function apnOptions(cred: ApnsCredential, ctx: ProviderContext & ApnsContextExtras): MultiProviderOptions {
  const opts: MultiProviderOptions = {
    production: cred.production,
    connectionRetryLimit: 0,
    requestTimeout: ctx.apnsRequestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
  };
  if (apnsAuthType(cred) === 'token') {
    opts.token = { key: cred.key!, keyId: cred.keyId!, teamId: cred.teamId! };
  } else if (cred.p12 !== undefined) {
    // A Buffer: node-apn reads a string that is not PEM as a file path.
    opts.pfx = Buffer.from(cred.p12, 'base64');
    if (cred.passphrase !== undefined) opts.passphrase = cred.passphrase;
  } else {
    opts.cert = cred.cert!;
    opts.key = cred.key!;
    if (cred.passphrase !== undefined) opts.passphrase = cred.passphrase;
  }
  if (ctx.endpoints.apns) {
    const u = new URL(ctx.endpoints.apns);
    opts.address = u.hostname;
    opts.port = u.port ? Number(u.port) : 443;
  } else {
    opts.address = cred.production ? 'api.push.apple.com' : 'api.sandbox.push.apple.com';
  }
  const extraCa = ctx.tls?.ca;
  if (extraCa !== undefined) opts.ca = [...rootCertificates, ...(typeof extraCa === 'string' ? [extraCa] : extraCa)];
  const connections = tuningOf(ctx, APNS_TUNING, 'apnsConnections');
  if (connections > 1) opts.clientCount = connections;
  return opts;
}

function toNotification(req: ApnsRequest): ApnNotification {
  const note = new apn.Notification();
  note.topic = req.topic;
  note.pushType = req.pushType;
  note.priority = req.priority;
  note.expiry = req.expiration;
  if (req.collapseId) note.collapseId = req.collapseId;
  note.rawPayload = req.payload;
  return note;
}

/** One send in flight, registered (in start order) while it holds a stream permit. */
class InFlight {
  readonly since = Date.now();

  constructor(
    private readonly registry: Set<InFlight>,
    private readonly streams: Semaphore,
    private readonly resolve: (o: Outcome) => void,
  ) {
    registry.add(this);
  }

  /** Settles the call once (a late answer after a timeout is dropped) and frees its permit. */
  finish(o: Outcome): void {
    if (!this.registry.delete(this)) return;
    this.streams.release();
    this.resolve(o);
  }
}

export class ApnsProvider implements Provider {
  readonly channel = 'apns' as const;
  private readonly client: ApnClient | undefined;
  private readonly createError: string | undefined;
  private readonly streams: Semaphore;
  private readonly log: Logger;
  private readonly requestTimeoutMs: number;
  /** Sends in flight, in start order. */
  private readonly inflight = new Set<InFlight>();
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly cred: ApnsCredential,
    ctx: ProviderContext & ApnsContextExtras,
  ) {
    this.log = ctx.logger.child({ channel: 'apns', bundleId: cred.bundleId });
    this.requestTimeoutMs = ctx.apnsRequestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const connections = Math.max(1, tuningOf(ctx, APNS_TUNING, 'apnsConnections'));
    this.streams = new Semaphore(Math.max(1, tuningOf(ctx, APNS_TUNING, 'apnsMaxStreams')) * connections);
    let client: ApnClient | undefined;
    let createError: string | undefined;
    try {
      const opts = apnOptions(cred, ctx);
      client = connections > 1 ? new apn.MultiProvider(opts) : new apn.Provider(opts);
      this.hookLogger(client);
    } catch (err) {
      // A credential that passed checkCredential but that node-apn refuses: every send fails.
      createError = (err as Error).message;
      this.log.error({ err: createError }, 'apns client could not be created');
    }
    this.client = client;
    this.createError = createError;
  }

  /** Routes node-apn's own diagnostics (session errors, GOAWAY) to pino at debug level. */
  private hookLogger(client: ApnClient): void {
    const inner = (client as unknown as { client?: { setLogger?: (l: unknown, e?: unknown) => void } }).client;
    if (typeof inner?.setLogger !== 'function') return;
    const info = Object.assign((msg: string) => this.log.trace(msg), { enabled: this.log.isLevelEnabled('trace') });
    const error = Object.assign((msg: string) => this.log.debug(msg), { enabled: this.log.isLevelEnabled('debug') });
    inner.setLogger(info, error);
  }

  /** Streams currently held (for metrics and tests). */
  get inFlight(): number {
    return this.streams.inUse;
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (targets.length === 0) return [];
    if (this.createError !== undefined || this.client === undefined) {
      const o = failed({ code: RELAY_CODES.invalidCredential, message: `APNs client could not be created: ${this.createError ?? 'unknown'}` });
      return targets.map(() => o);
    }
    if (this.closed) return targets.map(() => retry({ code: RELAY_CODES.closed, message: 'the APNs provider was closed' }));

    const built = buildApnsRequest(content, this.cred.bundleId);
    if (!built.ok) return targets.map(() => built.outcome);
    const note = toNotification(built.request);

    const outcomes = await this.sendAll(note, targets.map((t) => t.token));

    // node-apn regenerates its JWT after a 403 ExpiredProviderToken; with retries off in node-apn,
    // Relay re-sends those tokens once at once. A second ExpiredProviderToken stays `failed`
    // (clock skew or a revoked key: no retry will fix it).
    const expired = outcomes.flatMap((o, i) => (o.kind === 'failed' && o.reason.code === 'ExpiredProviderToken' ? [i] : []));
    if (expired.length > 0 && !this.closed) {
      const again = await this.sendAll(note, expired.map((i) => targets[i]!.token));
      expired.forEach((i, j) => (outcomes[i] = again[j]!));
    }

    this.logCredentialProblems(outcomes);
    return outcomes;
  }

  private async sendAll(note: ApnNotification, tokens: readonly string[]): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array<Outcome>(tokens.length);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (!isApnsTokenSyntax(token)) {
        outcomes[i] = invalid({
          code: 'BadDeviceToken',
          message: 'the device token is not hex bytes',
          evidence: { local: true, length: token.length },
        });
        continue;
      }
      const wait = this.streams.acquire();
      if (wait) await wait;
      pending.push(
        this.sendOne(note, token).then((o) => {
          outcomes[i] = o;
        }),
      );
    }
    await Promise.all(pending);
    return outcomes;
  }

  /** One token, one stream; the permit is held exactly while node-apn's stream is open. */
  private sendOne(note: ApnNotification, token: string): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const call = new InFlight(this.inflight, this.streams, resolve);
      this.watchStuckCalls();
      this.client!.send(note, token).then(
        (res) => {
          const r = (res.sent[0] ?? res.failed[0]) as ApnsResult | undefined;
          call.finish(r ? classifyApnsResult(r) : retry({ code: RELAY_CODES.transportError, message: 'node-apn returned no result' }));
        },
        (err: unknown) => call.finish(retry({ code: RELAY_CODES.transportError, message: (err as Error)?.message ?? String(err) })),
      );
    });
  }

  /**
   * node-apn can wait forever on a session an error already destroyed (it awaits `close(cb)` after
   * a 500): a stuck call must not keep its stream permit. One timer sweeps the calls in flight
   * (oldest first) while there are any, rather than a timer per token.
   */
  private watchStuckCalls(): void {
    if (this.watchdog) return;
    const limitMs = this.requestTimeoutMs * 2 + 1000;
    this.watchdog = setInterval(() => {
      const now = Date.now();
      for (const call of this.inflight) {
        if (now - call.since < limitMs) break;
        call.finish(retry({ code: RELAY_CODES.timeout, message: `node-apn gave no result within ${limitMs} ms` }));
      }
      if (this.inflight.size === 0) {
        clearInterval(this.watchdog);
        this.watchdog = undefined;
      }
    }, Math.min(1000, limitMs));
    this.watchdog.unref();
  }

  private logCredentialProblems(outcomes: readonly Outcome[]): void {
    const seen = new Set<string>();
    for (const o of outcomes) {
      if (o.kind !== 'failed' || seen.has(o.reason.code)) continue;
      seen.add(o.reason.code);
      this.log.warn({ code: o.reason.code, evidence: o.reason.evidence }, `apns: ${o.reason.message}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const client = this.client;
    if (!client) return;
    const sessions = internalSessions(client);
    // node-apn 8.1 waits forever in shutdown() for a session that an error already destroyed
    // (`close(cb)` on a destroyed session never calls back): forget those first.
    for (const s of sessions) if (s.holder[s.field]?.destroyed) s.holder[s.field] = null;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        // Provider.shutdown() returns nothing in node-apn 8.1 (despite its typings): use the callback.
        const r = client.shutdown(() => resolve()) as unknown;
        if (r instanceof Promise) r.catch(() => resolve());
      }),
      new Promise<void>((resolve) => {
        // Graceful close lets open streams finish (each ends within requestTimeout); then force.
        timer = setTimeout(() => {
          for (const s of sessions) s.holder[s.field]?.destroy();
          resolve();
        }, this.requestTimeoutMs + 1000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
}

type SessionHolder = Record<'session' | 'manageChannelsSession', { destroyed: boolean; destroy(): void } | null | undefined>;

/** node-apn's HTTP/2 session slots (`provider.client` is a Client or a MultiClient of Clients). */
function internalSessions(client: ApnClient): Array<{ holder: SessionHolder; field: keyof SessionHolder }> {
  const inner = (client as unknown as { client?: SessionHolder & { clients?: SessionHolder[] } }).client;
  if (!inner) return [];
  const holders = Array.isArray(inner.clients) ? inner.clients : [inner];
  return holders.flatMap((holder) => (['session', 'manageChannelsSession'] as const).map((field) => ({ holder, field })));
}

/** APNS_ENDPOINT: unset → node-apn's own production host (api.push.apple.com). */
export const APNS_ENDPOINTS = {
  apns: { env: 'APNS_ENDPOINT', doc: 'APNs base URL (e.g. https://api.sandbox.push.apple.com); unset: production' },
} as const satisfies Record<string, EndpointSetting>;

export const APNS_TUNING = {
  apnsMaxStreams: { env: 'APNS_MAX_STREAMS', default: 500, doc: 'Upper bound of concurrent HTTP/2 streams per APNs connection; Apple advertises ~1000' },
  apnsConnections: { env: 'APNS_CONNECTIONS', default: 1, doc: 'HTTP/2 connections per APNs credential' },
} as const satisfies Record<string, TuningSetting>;

const apnsModule = {
  channel: 'apns' as const,
  tokenSchema: z.string().regex(/^[0-9a-fA-F]{32,200}$/, 'an APNs device token is hex'),
  endpoints: APNS_ENDPOINTS,
  tuning: APNS_TUNING,
  overridesSchema: apnsOverridesSchema,
  credentialSchema: apnsCredentialSchema,
  checkCredential: checkApnsCredential,
  describe: describeApnsCredential,
  create: (cred, ctx) => new ApnsProvider(cred, ctx as ProviderContext & ApnsContextExtras),
} satisfies ProviderModule<ApnsCredential>;

export default apnsModule;

