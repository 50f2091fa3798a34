import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { parseDuration } from '../config.js';
import { overridesSchema } from '../../providers/channels.js';
import { notificationSchema } from '../core/push-request.js';
import { pushOptionsSchema } from '../push-request.js';
import { isIanaZone } from '../core/timezone.js';
import { compileTemplate, TemplateError } from './template.js';
import { instantSchema } from '../core/instant.js';

const id = z.string().min(1).max(256);
const tag = z.string().min(1).max(128);
const zone = z.string().max(64).refine(isIanaZone, 'an IANA time zone name such as Asia/Shanghai');
/** The longest duration a campaign takes: far past any device's life, yet a date PostgreSQL can hold. */
const MAX_DURATION_MS = 100 * 365 * 86_400_000;
/** A duration such as `30d`, `2h`, `15m`: stored as written, read with parseDuration. */
const duration = z
  .string()
  .regex(/^\d{1,9}(ms|s|m|h|d)$/, 'a duration such as 30d, 2h, 15m or 90s')
  .refine((d) => parseDuration(d) <= MAX_DURATION_MS, 'at most 100 years (36500d)');
const version = z.string().regex(/^[vV]?\d{1,9}(\.\d{1,9}){0,3}$/, 'a version such as 2.10.0');
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a wall-clock time HH:MM');
const localeKey = z.string().regex(/^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$/, 'a locale such as zh, zh-CN or pt-BR');

export const audienceSchema = z
  .object({
    platforms: z.array(z.enum(['ios', 'android', 'web'])).min(1).optional(),
    brands: z.array(z.string().min(1).max(32)).min(1).max(50).optional(),
    tags: z
      .object({ all: z.array(tag).min(1).max(50).optional(), any: z.array(tag).min(1).max(50).optional(), none: z.array(tag).min(1).max(50).optional() })
      .strict()
      .optional(),
    locales: z.array(localeKey).min(1).max(100).optional().describe('Prefix match by language: `zh` matches `zh-CN`'),
    appVersion: z.object({ gte: version.optional(), lt: version.optional() }).strict().optional().describe('Compared as versions: 2.10.0 > 2.9.1'),
    users: z.array(id).min(1).max(10_000).optional(),
    devices: z.array(id).min(1).max(10_000).optional(),
    lastSeen: z.object({ within: duration.optional(), notWithin: duration.optional() }).strict().optional(),
    timezones: z.array(zone).min(1).max(600).optional(),
  })
  .strict()
  .describe('Every filter optional, all ANDed; empty = every device of the app');
export type Audience = z.infer<typeof audienceSchema>;

const localizedSchema = z.record(localeKey, notificationSchema).describe('Notification text per locale: exact locale, then language, then the default');

const variantSchema = z
  .object({
    name: z.string().min(1).max(64),
    weight: z.number().min(0).max(1_000_000),
    notification: notificationSchema.optional(),
    data: z.record(z.string().min(1).max(256), z.unknown()).optional(),
    localized: localizedSchema.optional(),
    overrides: overridesSchema.optional(),
  })
  .strict();

export const scheduleSchema = z
  .object({
    at: instantSchema().optional().describe('Send at this instant'),
    localTime: z.iso.datetime({ local: true }).optional().describe("This wall-clock time in each device's own time zone"),
    cron: z.string().min(9).max(128).optional().describe('A run per tick (5 fields, or 6 with seconds)'),
    timezone: zone.optional().describe('The cron time zone, and the zone of devices without one (default UTC)'),
    until: instantSchema().optional().describe('No cron run after this instant'),
    lateWindow: duration.optional().describe('localTime: a zone whose time passed less than this ago is sent at once, else `missed` (default 1h)'),
  })
  .strict()
  .superRefine((s, ctx) => {
    const kinds = (['at', 'localTime', 'cron'] as const).filter((k) => s[k] !== undefined);
    if (kinds.length > 1) ctx.addIssue({ code: 'custom', message: `give one of at, localTime, cron (got ${kinds.join(', ')})` });
    if (s.cron !== undefined) {
      try {
        CronExpressionParser.parse(s.cron, { tz: s.timezone ?? 'UTC' });
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['cron'], message: `not a cron expression: ${(err as Error).message}` });
      }
    }
    if (s.until !== undefined && s.cron === undefined) ctx.addIssue({ code: 'custom', path: ['until'], message: 'until goes with cron' });
  });

export const campaignSchema = z
  .object({
    name: z.string().min(1).max(256),
    audience: audienceSchema.default({}),
    notification: notificationSchema.optional(),
    data: z.record(z.string().min(1).max(256), z.unknown()).optional(),
    localized: localizedSchema.optional(),
    options: pushOptionsSchema.omit({ sendAt: true }).default({ priority: 'high' }),
    overrides: overridesSchema.optional(),
    variants: z.array(variantSchema).min(1).max(26).optional(),
    abTest: z
      .object({ testPercent: z.number().int().min(1).max(99), metric: z.enum(['opened', 'delivered']).default('opened'), decideAfter: duration })
      .strict()
      .optional(),
    schedule: scheduleSchema.optional().describe('Absent: now'),
    throttle: z.object({ perMinute: z.number().int().min(1).max(10_000_000) }).strict().optional(),
    quietHours: z.object({ start: hhmm, end: hhmm }).strict().optional().describe("In each device's time zone; a send is postponed to the end"),
    frequencyCap: z.object({ perDay: z.number().int().min(1).max(1000) }).strict().optional().describe("Campaign sends per device per device-local day, across the app's campaigns"),
  })
  .strict()
  .superRefine((c, ctx) => {
    const hasContent = c.notification || c.data || c.localized || c.variants?.some((v) => v.notification || v.data || v.localized);
    if (!hasContent) ctx.addIssue({ code: 'custom', path: ['notification'], message: 'give notification, data, localized or variant content' });
    if (c.variants) {
      const names = c.variants.map((v) => v.name);
      if (new Set(names).size !== names.length) ctx.addIssue({ code: 'custom', path: ['variants'], message: 'variant names must not repeat' });
      if (c.variants.reduce((s, v) => s + v.weight, 0) <= 0) ctx.addIssue({ code: 'custom', path: ['variants'], message: 'variant weights must add up to more than 0' });
    }
    if (c.abTest && (c.variants?.length ?? 0) < 2) ctx.addIssue({ code: 'custom', path: ['abTest'], message: 'an A/B test needs at least two variants' });
    if (c.abTest && c.schedule?.cron) ctx.addIssue({ code: 'custom', path: ['abTest'], message: 'an A/B test with a winner runs once; it cannot repeat on a cron' });
    // A template error is the caller's to fix now, not a surprise per device at send time.
    for (const { path, text } of templateFields(c)) {
      try {
        compileTemplate(text);
      } catch (err) {
        if (err instanceof TemplateError) ctx.addIssue({ code: 'custom', path, message: err.message });
        else throw err;
      }
    }
  });
export type CampaignSpec = z.infer<typeof campaignSchema>;

/** Every text a device's attributes may fill in: notification and localized texts, string data values. */
export function templateFields(c: Pick<CampaignSpec, 'notification' | 'data' | 'localized' | 'variants'>): { path: (string | number)[]; text: string }[] {
  const out: { path: (string | number)[]; text: string }[] = [];
  const note = (n: Record<string, unknown> | undefined, path: (string | number)[]) => {
    for (const k of ['title', 'body'] as const) if (typeof n?.[k] === 'string') out.push({ path: [...path, k], text: n[k] as string });
  };
  const content = (x: { notification?: object; data?: Record<string, unknown>; localized?: Record<string, object> }, path: (string | number)[]) => {
    note(x.notification as Record<string, unknown> | undefined, [...path, 'notification']);
    for (const [k, v] of Object.entries(x.data ?? {})) if (typeof v === 'string') out.push({ path: [...path, 'data', k], text: v });
    for (const [loc, n] of Object.entries(x.localized ?? {})) note(n as Record<string, unknown>, [...path, 'localized', loc]);
  };
  content(c, []);
  c.variants?.forEach((v, i) => content(v, ['variants', i]));
  return out;
}

export const durationMs = (d: string | undefined, fallback: number): number => (d === undefined ? fallback : parseDuration(d));

export const campaignStates = ['draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled'] as const;
export type CampaignState = (typeof campaignStates)[number];
