import { z } from 'zod';
import apns from './apns.js';
import fcm from './fcm/index.js';
import honor from './honor.js';
import huawei from './huawei.js';
import meizu from './meizu.js';
import oppo from './oppo.js';
import self from './self.js';
import vivo from './vivo.js';
import webpush from './webpush.js';
import xiaomi from './xiaomi.js';
import type { ChannelModule, ProviderContext, ProviderModule, TokenIssue } from './types.js';

/**
 * The registry: every channel Relay knows, one line each. Everything else that depends on the
 * set of channels (the channel list, queues, config variables, provider endpoints, the device
 * tokens schema, the push request's overrides, marketing caps) is derived from this list.
 * The order is the order of queues, docs and validation messages; routing has its own order.
 */
export const CHANNEL_MODULES = [apns, fcm, self, huawei, xiaomi, oppo, vivo, honor, meizu, webpush] as const;

type AnyModule = (typeof CHANNEL_MODULES)[number];
export type Channel = AnyModule['channel'];
/** The Android makers' own push channels (a device's `brand` names one). */
export type VendorChannel = Extract<AnyModule, { androidBrand: true }>['channel'];

export const CHANNELS = CHANNEL_MODULES.map((m) => m.channel) as [Channel, ...Channel[]];
export const VENDOR_CHANNELS = CHANNEL_MODULES.filter((m) => 'androidBrand' in m && m.androidBrand).map((m) => m.channel) as VendorChannel[];

/** A vendor's device token: an opaque string. */
export const vendorTokenSchema = z.string().min(1).max(4096);

const BY_NAME = new Map<string, ChannelModule>(CHANNEL_MODULES.map((m) => [m.channel, m]));

/** The module of a channel, built-in ones included. */
export function channelModule(channel: string): ChannelModule | undefined {
  return BY_NAME.get(channel);
}

/** Every channel that is configured with credentials, by name. */
export const PROVIDER_MODULES: Partial<Record<Channel, ProviderModule<unknown>>> = Object.fromEntries(
  CHANNEL_MODULES.filter((m) => !('builtin' in m && m.builtin)).map((m) => [m.channel, m as unknown as ProviderModule<unknown>]),
);

export function providerModule(channel: string): ProviderModule<unknown> | undefined {
  return PROVIDER_MODULES[channel as Channel];
}

/**
 * Adds a module at run time (a test's toy channel, an embedding's private channel): the provider
 * registry, the conformance harness and `providerModule()` see it. The request and config schemas
 * above are built once at start-up from CHANNEL_MODULES; a shipped channel belongs in that list.
 */
export function registerChannel(mod: ChannelModule): void {
  if (BY_NAME.has(mod.channel)) throw new Error(`channel ${mod.channel} is already registered`);
  BY_NAME.set(mod.channel, mod);
  if (!mod.builtin) (PROVIDER_MODULES as Record<string, ProviderModule<unknown>>)[mod.channel] = mod as ProviderModule<unknown>;
}

/**
 * `overrides` of `POST /v1/push`: one optional object per channel, each checked by its channel's
 * own schema when the push is accepted, so a typo is a 400 naming `body.overrides.<channel>.<field>`.
 */
export const overridesSchema = deriveOverridesSchema<Channel>(CHANNEL_MODULES);

/** The `overrides` object for a list of modules (exported so a test can derive it for its own channel). */
export function deriveOverridesSchema<N extends string>(modules: readonly ChannelModule[]) {
  return z
    .strictObject(Object.fromEntries(modules.map((m) => [m.channel, m.overridesSchema.optional()])) as unknown as Record<N, z.ZodOptional<z.ZodType<Record<string, unknown>>>>)
    .describe('Provider-specific fields merged last, per channel');
}


/** Channels a device registers a token for (every channel but the built-in ones). */
export const TOKEN_CHANNELS = CHANNEL_MODULES.filter((m) => !('builtin' in m && m.builtin)).map((m) => m.channel) as [Channel, ...Channel[]];

/** `tokens` of `PUT /v1/devices/:id`: each channel's own token schema; null removes one. */
export const deviceTokensSchema = deriveDeviceTokensSchema<Channel>(CHANNEL_MODULES);

/** The device `tokens` object for a list of modules: built-in channels have no token. */
export function deriveDeviceTokensSchema<N extends string>(modules: readonly ChannelModule[]) {
  return z
    .strictObject(
      Object.fromEntries(modules.filter((m) => !m.builtin).map((m) => [m.channel, (m.tokenSchema ?? vendorTokenSchema).nullable().optional()])) as Record<N, z.ZodOptional<z.ZodNullable<z.ZodType<string, unknown>>>>,
    )
    .describe('Channel tokens; null removes one');
}

/** A raw token (`to.token`) in the form its channel stores, or why it cannot be sent to. */
export function normaliseToken(channel: string, raw: string): string | TokenIssue {
  return channelModule(channel)?.normaliseToken?.(raw) ?? raw;
}

/** What may be shown of a stored token (before masking). */
export function displayToken(channel: string, token: string): string {
  return channelModule(channel)?.displayToken?.(token) ?? token;
}

/** Marketing-class messages each vendor allows per device per day. */
export const MARKETING_DAILY_CAPS: Partial<Record<Channel, number>> = Object.fromEntries(
  CHANNEL_MODULES.flatMap((m) => ('marketingDailyCap' in m && m.marketingDailyCap !== undefined ? [[m.channel, m.marketingDailyCap]] : [])),
);

const url = z.string().url();
const positiveInt = z.coerce.number().int().positive();

/**
 * The environment variables the channels read (endpoints and tuning), as a zod shape for the
 * config: `HUAWEI_ENDPOINT`, `APNS_MAX_STREAMS`, … with each module's defaults.
 */
export function channelConfigShape(modules: readonly ChannelModule[] = CHANNEL_MODULES): Record<string, z.ZodType<string | number | undefined, unknown>> {
  const shape: Record<string, z.ZodType<string | number | undefined, unknown>> = {};
  for (const m of modules) {
    for (const e of Object.values((m as ChannelModule).endpoints ?? {})) shape[e.env] = (e.default ? url.default(e.default) : url.optional()).describe(e.doc);
    for (const t of Object.values((m as ChannelModule).tuning ?? {})) shape[t.env] = positiveInt.default(t.default).describe(t.doc);
  }
  return shape;
}

/** The provider context from parsed config values (keyed by variable name). */
export function providerContextFrom(
  values: Readonly<Record<string, unknown>>,
  rest: Omit<ProviderContext, 'endpoints' | 'tuning'>,
  modules: readonly ChannelModule[] = CHANNEL_MODULES,
): ProviderContext {
  const endpoints: Record<string, string | undefined> = {};
  const tuning: Record<string, number | undefined> = {};
  for (const m of modules) {
    for (const [key, e] of Object.entries((m as ChannelModule).endpoints ?? {})) endpoints[key] = (values[e.env] as string | undefined) ?? e.default;
    for (const [key, t] of Object.entries((m as ChannelModule).tuning ?? {})) tuning[key] = (values[t.env] as number | undefined) ?? t.default;
  }
  return { ...rest, endpoints, tuning };
}
