import type { z } from 'zod';
import type { Logger } from 'pino';
import { RELAY_CODES } from '../src/core/outcome-codes.js';
import type { Outcome, OutcomeReason } from '../src/core/outcome.js';

// A channel's name and the list of channels come from the registry (providers/channels.ts): one
// line there per module. Only the types are re-exported here.
export type { Channel, VendorChannel } from './channels.js';

export const APNS_PUSH_TYPES = [
  'alert', 'background', 'location', 'voip', 'complication', 'fileprovider', 'mdm', 'liveactivity', 'pushtotalk', 'widgets',
] as const;
export type ApnsPushType = (typeof APNS_PUSH_TYPES)[number];

// The outcome model is domain, not provider wire: it lives in core and is re-exported here so a
// provider module needs only this file.
export { expired, failed, invalid, quotaDay, retry, sent, type Outcome, type OutcomeReason } from '../src/core/outcome.js';
export { RELAY_CODES, httpStatusCode } from '../src/core/outcome-codes.js';

/** The code of an `expired` outcome (kept for callers that compare codes). */
export const EXPIRED_CODE = RELAY_CODES.expired;

/** Vendor-neutral notification content, already validated by the API. */
export interface PushNotification {
  title?: string;
  body?: string;
  image?: string;
  sound?: string;
  badge?: number;
  clickAction?: string;
}

export interface PushOptions {
  /** Seconds the message stays deliverable, counted from acceptance. */
  ttl: number;
  priority: 'high' | 'normal';
  collapseKey?: string;
  pushType?: ApnsPushType;
  /** Vendor-neutral message class (`im`, `account`, `order`, `marketing`, …) mapped per vendor. */
  category?: string;
}

/** What one message asks every provider to show; built once per message, shared by all batches. */
export interface PushContent {
  messageId: string;
  notification?: PushNotification;
  data?: Record<string, unknown>;
  options: PushOptions;
  /** Absolute deadline (ms since epoch); providers send the remaining TTL, never the original. */
  expiresAt: number;
  /**
   * Per-channel overrides from the request (`overrides.apns`, `overrides.fcm`, …), merged last.
   * Each was checked against its channel's `overridesSchema` when the push was accepted.
   */
  overrides?: Readonly<Partial<Record<string, Record<string, unknown>>>>;
}

/**
 * `overrides.<channel>` of a message, as its channel's `overridesSchema` accepted it at the API
 * (an invalid one never gets past `POST /v1/push`); `{}` when the request gave none.
 */
export function channelOverrides<T extends object>(content: Pick<PushContent, 'overrides'>, channel: string): T {
  return (content.overrides?.[channel] ?? {}) as T;
}

export interface SendTarget {
  /** Delivery row id: the self provider records the per-device seq against it; others only log it. */
  deliveryId: string;
  /** The raw channel token (for Web Push: the PushSubscription JSON as a string). */
  token: string;
  /** Self channel only: the per-device sequence number. */
  seq?: number;
}

/**
 * One provider client bound to one app's credential. Long-lived: created once per credential
 * version and reused for every batch.
 */
export interface Provider {
  readonly channel: string;
  /**
   * Sends one message to many tokens. Returns one outcome per target, in the same order.
   * Never throws for per-token or transport errors: those are outcomes (`retry` for transport).
   * The provider chunks internally to its own batch and concurrency limits.
   */
  send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]>;
  /**
   * The vendor's own recall (revoke) API, where it has one (docs/recall.md): withdraws `content`
   * (the original message, as it was sent) from these targets. One outcome per target, in order,
   * read as: `sent` = withdrawn, `retry` = ask again later, anything else = not withdrawable (its
   * reason says why). Never throws for per-token or transport errors. Absent: Relay recalls by
   * replacement where the channel allows it, or not at all (src/core/recall.ts).
   */
  recall?(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]>;
  close(): Promise<void>;
}


/** One endpoint URL a channel calls; its environment variable and default feed the config. */
export interface EndpointSetting {
  env: string;
  /** Absent: the variable is optional and the client library's own default applies. */
  default?: string;
  doc: string;
}

/** One concurrency or size knob of a channel, read from an environment variable. */
export interface TuningSetting {
  env: string;
  default: number;
  doc: string;
}

/**
 * Endpoints and policy a provider may need; built from the validated config by the registry
 * (every module's `endpoints` and `tuning`, under the keys the module declares).
 */
export interface ProviderContext {
  endpoints: Readonly<Record<string, string | undefined>>;
  /**
   * Extra CAs a provider trusts besides Node's roots. Production uses NODE_EXTRA_CA_CERTS; this
   * lets a test (or an embedding) hand a private CA to one provider instance.
   */
  tls?: { ca?: string | readonly string[] };
  tuning: Readonly<Record<string, number | undefined>>;
  logger: Logger;
}

/** The URL of endpoint `key`: the configured one, else the module's default. */
export function endpointOf<E extends Readonly<Record<string, EndpointSetting>>>(ctx: Pick<ProviderContext, 'endpoints'>, specs: E, key: keyof E & string): string {
  const url = ctx.endpoints[key] || specs[key]?.default;
  if (!url) throw new Error(`no ${specs[key]?.env ?? key} configured`);
  return url;
}

/** Tuning knob `key`: the configured value, else the module's default. */
export function tuningOf<T extends Readonly<Record<string, TuningSetting>>>(ctx: Pick<ProviderContext, 'tuning'>, specs: T, key: keyof T & string): number {
  return ctx.tuning[key] ?? specs[key]!.default;
}

/** One fact a vendor receipt webhook reported, matched back to a delivery by the receipts worker. */
export interface ReceiptEvent {
  /** `failed`: the vendor accepted the message but reports it was not delivered (e.g. a daily cap). */
  event: 'delivered' | 'opened' | 'invalid' | 'failed';
  /** The vendor's message / task id, as returned by `sent(providerId)`. */
  providerId?: string;
  /** Relay's message id when the vendor echoes it (biz tag / callback param). */
  messageId?: string;
  /** The device token the receipt is about. */
  token?: string;
  /** Epoch ms the vendor reports; now when absent. */
  at?: number;
  reason?: OutcomeReason;
}

/** What a receipt webhook request looks like to a parser. */
export interface ReceiptRequest {
  headers: Record<string, string | string[] | undefined>;
  /** The body exactly as received (signatures are computed over it). */
  rawBody: string;
  contentType: string;
}

/** A credential problem found by a provider's deeper check (e.g. a PEM that does not parse). */
export class CredentialError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'CredentialError';
  }
}

/**
 * The app's stored credential could not be read (it no longer decrypts: CREDENTIALS_KEY changed),
 * and the module needs it to complete a new one. The API answers `credential_unreadable`.
 */
export class CredentialUnreadableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialUnreadableError';
  }
}

/** Why a raw token cannot be sent to, with the field of the token it is about. */
export interface TokenIssue {
  path: PropertyKey[];
  message: string;
}

/**
 * Everything Relay knows about a channel, in one object: the registry (providers/channels.ts)
 * derives the channel list, the config variables, the provider context, the device tokens schema
 * and the push request's overrides from these. Built-in channels (the self channel) are only this;
 * channels with credentials are a {@link ProviderModule}.
 */
export interface ChannelModule {
  readonly channel: string;
  /** Android devices whose `brand` is this channel's name are routed to it (a vendor channel). */
  readonly androidBrand?: boolean;
  /** Built in (no credentials): the registry makes its provider through a factory, once per app. */
  readonly builtin?: boolean;
  /**
   * `overrides.<channel>` of `POST /v1/push`: checked when the push is accepted (a bad field is a
   * 400 naming it) and documented in the OpenAPI from this schema. Unknown fields must be refused.
   */
  overridesSchema: z.ZodType<Record<string, unknown>>;
  /**
   * `tokens.<channel>` of `PUT /v1/devices/:id`: what a device registers, turned into the stored
   * token string. Absent: a channel token string (1 to 4096 characters). Built-in channels have none.
   */
  tokenSchema?: z.ZodType<string, unknown>;
  /** A raw token (`to.token.value`) in its stored form, or why it cannot be sent to. Absent: as given. */
  normaliseToken?(raw: string): string | TokenIssue;
  /** The part of a stored token safe to show (masked by the API); absent: the token itself. */
  displayToken?(token: string): string;
  /** Endpoint URLs, by the key the provider reads in `ProviderContext.endpoints`. */
  endpoints?: Readonly<Record<string, EndpointSetting>>;
  /** Concurrency knobs, by the key the provider reads in `ProviderContext.tuning`. */
  tuning?: Readonly<Record<string, TuningSetting>>;
  /** Marketing-class messages the vendor allows per device per day (send worker counts them). */
  marketingDailyCap?: number;
  /**
   * Tokens one request to the provider can carry. The router makes first-attempt send jobs at
   * least this large, so a job is one full request rather than half of one.
   */
  batchMax?: number;
}

/**
 * What each file in `providers/` exports as its default: the channel's facts, its credential
 * contract and a factory. The registry knows channels only through these modules.
 */
export interface ProviderModule<C = unknown> extends ChannelModule {
  /** The `PUT /v1/apps/:app/credentials/:provider` body. */
  credentialSchema: z.ZodType<C>;
  /**
   * The vendor posts receipts only to a URL sent with each message: the credential's `callbackUrl`
   * defaults to this app's receipt URL when the PUT body names none.
   */
  wantsCallbackUrl?: boolean;
  /**
   * On `PUT …/credentials/:provider`, before the checks: keeps parts of the app's stored credential
   * that the body leaves out (Web Push keeps its VAPID keys, which every subscription is bound to).
   * `stored()` reads it (null when the app has none, and throws when it does not decrypt); a module
   * that cannot do without it throws CredentialUnreadableError.
   */
  keepFromStored?(cred: C, stored: () => Promise<unknown>): Promise<C>;
  /** Deeper checks than the schema (parse keys, certificates); throws CredentialError. */
  checkCredential?(cred: C): void;
  /** May fill generated parts (e.g. VAPID keys) before the credential is stored. */
  complete?(cred: C): C;
  /** Fields safe to show in `GET /v1/apps/:app/credentials` (never secrets). */
  describe(cred: C): Record<string, unknown>;
  create(cred: C, ctx: ProviderContext): Provider;
  /**
   * Vendor receipt webhooks. `verify` checks the vendor's signature where it has one (the shared
   * secret in the URL is checked by the API before this); `parse` throws on a malformed body.
   */
  receipts?: {
    verify?(cred: C, req: ReceiptRequest): boolean;
    parse(req: ReceiptRequest): ReceiptEvent[];
  };
  /** Requests per second the vendor allows for one credential (BullMQ limiter per credential). */
  qps?(cred: C): number | undefined;
}
