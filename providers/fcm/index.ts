import { randomUUID } from 'node:crypto';
import https from 'node:https';
import { deleteApp, initializeApp, type App } from 'firebase-admin/app';
import { getMessaging, type BaseMessage, type Messaging, type TokenMessage } from 'firebase-admin/messaging';
import {
  retry,
  sent,
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
  endpointOf,
} from '../types.js';
import { createLimiter, type Limiter } from '../shared/limiter.js';
import { accessTokenRefusedAgain, classifyFcmError, classifyOAuthFailure, isAccessTokenRejection } from './classify.js';
import { fcmCredentialSchema, OAuthTokenError, parseRsaKey, ServiceAccountCredential, type FcmCredential } from './credential.js';
import { buildFcmMessage, fcmOverridesSchema } from './message.js';
import { endpointTarget, exchange, FCM_DEFAULT_ENDPOINT, FcmAgent, trustOptions, type FcmHttpEvidence } from './transport.js';

export * from './classify.js';
export * from './credential.js';
export * from './message.js';
export * from './transport.js';

/**
 * FCM HTTP v1 through firebase-admin 13.x (`messaging.send()`, one HTTP/1.1 request per token).
 *
 * Why the pieces below exist (facts in shared/providers/apns-fcm.md §3–§4):
 * - firebase-admin hard-codes `fcm.googleapis.com`; `FCM_ENDPOINT` is honoured by an `https.Agent`
 *   (`AppOptions.httpAgent`, which `send()` uses) whose sockets connect to the endpoint instead.
 * - `cert(object)` ignores agents and always asks `oauth2.googleapis.com`; {@link ServiceAccountCredential}
 *   signs the JWT-bearer assertion itself and asks the service account's own `token_uri` (SPEC §9).
 * - v13 errors carry neither the HTTP status, `Retry-After` nor the error details. The agent records
 *   them per request (an AsyncLocalStorage slot opened around each `send()`), so the classification
 *   sees the real answer ({@link classifyFcmError}).
 * - firebase-admin's own retries (503 up to 4×, honouring Retry-After up to 60 s, and ECONNRESET /
 *   ETIMEDOUT) are switched off: Relay's send worker owns retries per token, with its backoff and TTL.
 * - The access token is cached by {@link ServiceAccountCredential}, not by firebase-admin, so that a
 *   token FCM refuses (401 without FcmError: revoked before its stated expiry) can be dropped; the
 *   provider then fetches one new token and re-sends once ({@link FcmProvider#sendOne}).
 */


// ---------------------------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------------------------

/** firebase-admin internals touched to switch its retries off (lib/utils/api-request.js). */
interface MessagingInternals {
  messagingRequestHandler?: { httpClient?: { retry?: unknown } };
}
const NO_RETRY = { maxRetries: 0, statusCodes: [], ioErrorCodes: [], backOffFactor: 0, maxDelayInMillis: 0 };

class FcmProvider implements Provider {
  readonly channel = 'fcm' as const;
  private readonly app: App;
  private readonly messaging: Messaging;
  private readonly agent: FcmAgent;
  private readonly tokenAgent: https.Agent;
  private readonly credential: ServiceAccountCredential;
  private readonly limiter: Limiter;
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;

  constructor(cred: FcmCredential, ctx: ProviderContext) {
    const sa = cred.serviceAccount;
    const concurrency = Math.max(1, tuningOf(ctx, FCM_TUNING, 'fcmConcurrency'));
    const trust = trustOptions(ctx);
    const endpoint = endpointOf(ctx, FCM_ENDPOINTS, 'fcm');
    const target = endpointTarget(endpoint);
    if (new URL(endpoint).pathname.replace(/\/+$/, '') !== '') {
      ctx.logger.warn({ endpoint }, 'FCM_ENDPOINT path is ignored; requests go to /v1/projects/{project}/messages:send');
    }
    this.agent = new FcmAgent(target, { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency, ...trust });
    this.tokenAgent = new https.Agent({ keepAlive: false, ...trust });
    this.credential = new ServiceAccountCredential(sa, this.tokenAgent);
    this.limiter = createLimiter(concurrency);
    this.app = initializeApp(
      { credential: this.credential, projectId: sa.project_id, httpAgent: this.agent },
      `relay-fcm-${sa.project_id}-${randomUUID()}`,
    );
    this.messaging = getMessaging(this.app);
    const internals = (this.messaging as unknown as MessagingInternals).messagingRequestHandler?.httpClient;
    if (internals && 'retry' in internals) internals.retry = NO_RETRY;
    else ctx.logger.warn('firebase-admin internals changed: its own 503 retries stay on');
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (targets.length === 0) return [];
    const built = buildFcmMessage(content);
    if (!built.ok) return targets.map(() => built.outcome);
    const work = Promise.all(targets.map((t) => this.limiter(() => this.sendOne(built.message, t.token))));
    this.pending.add(work);
    try {
      return await work;
    } finally {
      this.pending.delete(work);
    }
  }

  /**
   * One token: one request, plus one re-send when FCM refused the access token (a 401 without
   * FcmError, see {@link isAccessTokenRejection}). Google may revoke a token before its stated
   * expiry; the refused token is dropped, one new token is fetched (shared by every send refused
   * with that same token) and the request re-sent once. A second refusal is `failed`.
   */
  private async sendOne(message: BaseMessage, token: string): Promise<Outcome> {
    if (this.closed) return retry({ code: RELAY_CODES.closed, message: 'provider closed before the request was made' });
    const first = await this.attempt(message, token);
    if (!first.http || !isAccessTokenRejection(first.http)) return first.outcome;

    this.credential.invalidate(first.http.bearer);
    try {
      // Fetched here, not lazily inside the re-send: an OAuth failure gets its own outcome, and a new
      // token only replaces the refused one across a token request (network I/O), so once this has
      // resolved every firebase-admin token lookup begun before the invalidation (resolved from the
      // cache within microtasks) has settled: the re-send cannot pick up the refused token.
      await this.credential.token();
    } catch (err) {
      return err instanceof OAuthTokenError ? classifyOAuthFailure(err.failure) : retry({ code: RELAY_CODES.authError, message: String(err) });
    }
    const second = await this.attempt(message, token);
    if (!second.http || !isAccessTokenRejection(second.http)) return second.outcome;
    return accessTokenRefusedAgain(second.http);
  }

  /** One `messaging.send()`; `http` is what FCM answered when it answered with an error. */
  private async attempt(message: BaseMessage, token: string): Promise<{ outcome: Outcome; http?: FcmHttpEvidence }> {
    const evidence: FcmHttpEvidence = {};
    try {
      const name = await exchange.run(evidence, () => this.messaging.send({ ...message, token } as TokenMessage));
      return { outcome: sent(name) };
    } catch (err) {
      if ((err as { code?: string }).code === 'app/invalid-credential' && this.credential.lastFailure) {
        return { outcome: classifyOAuthFailure(this.credential.lastFailure) };
      }
      return { outcome: classifyFcmError(err, evidence), http: evidence };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    await deleteApp(this.app).catch(() => undefined);
    this.agent.destroy();
    this.tokenAgent.destroy();
  }
}

export const FCM_ENDPOINTS = {
  fcm: { env: 'FCM_ENDPOINT', default: FCM_DEFAULT_ENDPOINT, doc: 'FCM HTTP v1 base URL' },
} as const satisfies Record<string, EndpointSetting>;

export const FCM_TUNING = {
  fcmConcurrency: { env: 'FCM_CONCURRENCY', default: 64, doc: 'Concurrent FCM requests per credential' },
} as const satisfies Record<string, TuningSetting>;

const fcmModule = {
  channel: 'fcm' as const,
  endpoints: FCM_ENDPOINTS,
  tuning: FCM_TUNING,
  overridesSchema: fcmOverridesSchema,
  credentialSchema: fcmCredentialSchema,
  checkCredential(cred) {
    parseRsaKey(cred.serviceAccount.private_key);
  },
  describe(cred) {
    const sa = cred.serviceAccount;
    return { projectId: sa.project_id, clientEmail: sa.client_email, tokenUri: sa.token_uri };
  },
  create(cred, ctx) {
    return new FcmProvider(cred, ctx);
  },
} satisfies ProviderModule<FcmCredential>;

export default fcmModule;
