import { z } from 'zod';
import type { Channel, overridesSchema as registryOverrides } from '../../providers/channels.js';
import type { ApnsPushType, TokenIssue } from '../../providers/types.js';
import { instantSchema } from './instant.js';

/**
 * What the push request's schema needs to know about the channels, handed in by the registry
 * (src/push-request.ts binds it): core stays free of provider code.
 */
export interface ChannelFacts {
  channels: readonly [Channel, ...Channel[]];
  /** Channels a raw token (`to.token`) may name. */
  tokenChannels: readonly [Channel, ...Channel[]];
  normaliseToken(channel: string, raw: string): string | TokenIssue;
  /** `overrides`: one object per channel, each checked by its channel's own schema. */
  overridesSchema: typeof registryOverrides;
  apnsPushTypes: readonly [ApnsPushType, ...ApnsPushType[]];
}

/** The longest TTL any provider honours (FCM and APNs both keep a message 28 days at most). */
export const MAX_TTL_SECONDS = 2_419_200;
/**
 * `ttl: 0` is "now or never" (an incoming call, a one-time code): Relay attempts it within this
 * window, retries included, and the providers that can are told not to store it (APNs
 * `apns-expiration: 0`, FCM `ttl: 0s`, Web Push `TTL: 0`). A zero-length window would expire the
 * message at the moment it is accepted, before any worker could send it.
 */
export const NOW_OR_NEVER_MS = 30_000;

const id = z.string().min(1).max(256);
const tag = z.string().min(1).max(128);

export const retryPolicySchema = z
  .object({
    maxAttempts: z.number().int().min(1).max(100).optional().describe('Attempts per token, first send included (default MAX_ATTEMPTS)'),
    backoff: z
      .object({
        type: z.enum(['exponential', 'fixed']).default('exponential'),
        delayMs: z.number().int().min(0).max(86_400_000).optional().describe('First delay (exponential) or every delay (fixed)'),
        maxDelayMs: z.number().int().min(0).max(86_400_000).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type RetryPolicyInput = z.infer<typeof retryPolicySchema>;



export const notificationSchema = z
  .object({
    title: z.string().max(1024).optional(),
    body: z.string().max(4096).optional(),
    image: z.string().url().max(2048).optional(),
    sound: z.string().max(256).optional(),
    badge: z.number().int().min(0).max(1_000_000).optional(),
    clickAction: z.string().max(2048).optional().describe('Deep link or action opened on tap'),
  })
  .strict();

/** Exactly one addressing mode; an object with optional keys gives errors that name the field. */
function targetSchema(ch: ChannelFacts) {
  return z
  .object({
    devices: z.array(id).min(1).max(10_000).optional().describe('Device (installation) ids'),
    users: z.array(id).min(1).max(10_000).optional().describe('User ids (aliases): every device of each user'),
    tags: z
      .object({
        all: z.array(tag).min(1).max(50).optional().describe('The device has every one of these tags'),
        any: z.array(tag).min(1).max(50).optional().describe('The device has at least one of these tags'),
      })
      .strict()
      .refine((t) => t.all !== undefined || t.any !== undefined, { message: 'give tags.all, tags.any or both' })
      .optional(),
    token: z
      .object({ channel: z.enum(ch.tokenChannels), value: z.string().min(1).max(8192) })
      .strict()
      .transform((t, ctx) => {
        // The channel's own stored form (a Web Push subscription in canonical key order), so a
        // quarantined token is recognised, and a bad one is refused here rather than at send time.
        const value = ch.normaliseToken(t.channel, t.value);
        if (typeof value === 'string') return { ...t, value };
        ctx.addIssue({ code: 'custom', path: ['value'], message: value.message });
        return z.NEVER;
      })
      .optional()
      .describe('One raw channel token, without a registered device'),
    all: z.literal(true).optional().describe('Every device of the app'),
  })
  .strict()
  .superRefine((t, ctx) => {
    const keys = Object.keys(t).filter((k) => t[k as keyof typeof t] !== undefined);
    if (keys.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `give exactly one of devices, users, tags, token, all (got ${keys.length ? keys.join(', ') : 'none'})` });
    }
  });
}

function pushOptionsSchema(ch: ChannelFacts) {
  return z
  .object({
    ttl: z
      .number()
      .int()
      .min(0)
      .max(MAX_TTL_SECONDS)
      .optional()
      .describe('Seconds the message stays deliverable; 0 = now or never (attempted within 30 s, not stored by the provider)'),
    priority: z.enum(['high', 'normal']).default('high'),
    collapseKey: z.string().min(1).max(64).optional(),
    pushType: z.enum(ch.apnsPushTypes).optional().describe('APNs push type; voip / liveactivity use the matching topic'),
    category: z.string().min(1).max(64).optional().describe('Vendor-neutral message class: im, account, order, marketing, …'),
    channels: z
      .array(z.enum(ch.channels))
      .min(1)
      .max(ch.channels.length)
      .refine((c) => new Set(c).size === c.length, { message: 'channels must not repeat' })
      .optional()
      .describe('Pin or order the channels tried for each device'),
    sendAt: instantSchema().optional().describe('Schedule the send (RFC 3339)'),
    retry: retryPolicySchema.optional(),
  })
  .strict();
}

/** How long after acceptance (or `sendAt`) an undelivered push gets its SMS: `90s`, `5m`, `2h`; 1 s to 72 h. */
export const FALLBACK_AFTER = /^(\d{1,6})(s|m|h)$/;
export const FALLBACK_MAX_AFTER_MS = 72 * 3_600_000;
export function fallbackAfterMs(after: string): number {
  const m = FALLBACK_AFTER.exec(after);
  if (!m) throw new Error(`not a fallback delay: ${after}`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

/** `options.fallback` of `POST /v1/push`: an SMS to each device the push did not reach in time. */
export const fallbackSchema = z
  .object({
    sms: z
      .object({
        after: z
          .string()
          .regex(FALLBACK_AFTER, 'a delay such as 90s, 5m or 2h')
          .refine((a) => !FALLBACK_AFTER.test(a) || (fallbackAfterMs(a) >= 1000 && fallbackAfterMs(a) <= FALLBACK_MAX_AFTER_MS), 'between 1s and 72h')
          .describe('Send the SMS when the push has not been delivered (or opened) this long after it was accepted'),
        text: z.string().min(1).max(1600).describe('The SMS text'),
      })
      .strict(),
  })
  .strict()
  .describe('SMS top-up: devices with an sms token the push did not reach in time get this SMS, once');

function pushRequestSchema(ch: ChannelFacts) {
  return z
  .object({
    to: targetSchema(ch),
    notification: notificationSchema.optional(),
    data: z.record(z.string().min(1).max(256), z.unknown()).optional().describe('Custom key/values delivered to the app'),
    options: pushOptionsSchema(ch).extend({ fallback: fallbackSchema.optional() }).default({ priority: 'high' }),
    overrides: ch.overridesSchema.optional(),
  })
  .strict()
  .refine((r) => r.notification !== undefined || r.data !== undefined, {
    message: 'give notification, data or both',
    path: ['notification'],
  });
}

/** The push request's schemas for a set of channels (the registry's, bound in src/push-request.ts). */
export function pushRequestSchemas(ch: ChannelFacts) {
  return { targetSchema: targetSchema(ch), pushOptionsSchema: pushOptionsSchema(ch), pushRequestSchema: pushRequestSchema(ch) };
}
type Schemas = ReturnType<typeof pushRequestSchemas>;
export type Target = z.infer<Schemas['targetSchema']>;
export type PushRequest = z.infer<Schemas['pushRequestSchema']>;
