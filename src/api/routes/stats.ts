import { Router } from 'express';
import { z } from 'zod';
import type { Context } from '../../context.js';
import {
  STATS_DIMENSIONS, STATS_FIELDS, STATS_INTERVALS,
  type StatsDimension, type StatsField, type StatsInterval,
} from '../../db/stats-repo.js';
import { appOf } from '../auth.js';
import { route } from '../define.js';
import { ApiError } from '../errors.js';
import { instantSchema } from '../../core/instant.js';

const STEP_MS: Record<StatsInterval, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
/** The window when `from` is omitted: a chart's worth of points at each interval. */
const DEFAULT_WINDOW_MS: Record<StatsInterval, number> = { minute: 3_600_000, hour: 86_400_000, day: 30 * 86_400_000 };
/** Points per series at most: a day of minutes, two months of hours, four years of days. */
export const MAX_POINTS = 1440;
/** `GET /v1/stats/errors` sums minutes over at most this many days. */
const MAX_ERROR_DAYS = 92;

const time = instantSchema().describe('RFC 3339 time');
const dimensionList = new RegExp(`^(${STATS_DIMENSIONS.join('|')})(,(${STATS_DIMENSIONS.join('|')}))*$`);

const statsQuery = z.object({
  from: time.optional().describe('Start (inclusive, rounded down to the interval); default: `to` minus an hour (minute), a day (hour) or 30 days (day)'),
  to: time.optional().describe('End (exclusive); default: the end of the current interval'),
  interval: z.enum(STATS_INTERVALS).default('hour').describe('Point width, in UTC'),
  groupBy: z
    .string()
    .regex(dimensionList, `a comma-separated list of ${STATS_DIMENSIONS.join(', ')}`)
    .optional()
    .transform((s) => [...new Set((s ?? '').split(',').filter(Boolean))] as StatsDimension[])
    .describe(`One series per distinct combination of these (${STATS_DIMENSIONS.join(', ')}); none: one series`),
  channel: z.string().min(1).max(32).optional().describe('Only this channel'),
  platform: z.string().min(1).max(32).optional().describe('Only this platform'),
  campaign: z.string().min(1).max(128).optional().describe('Only this campaign'),
  variant: z.string().min(1).max(128).optional().describe('Only this A/B variant'),
  limit: z.coerce.number().int().min(1).max(500).default(100).describe('Series at most, the busiest first'),
});

const errorsQuery = z.object({
  from: time.optional().describe('Start (inclusive); default: `to` minus a day'),
  to: time.optional().describe('End (exclusive); default: the end of the current minute'),
  channel: z.string().min(1).max(32).optional().describe('Only this channel'),
  limit: z.coerce.number().int().min(1).max(100).default(10).describe('Reasons per channel at most'),
});

const fields = z.object(Object.fromEntries(STATS_FIELDS.map((f) => [f, z.number().int()])) as Record<StatsField, z.ZodNumber>);
const rates = z.object({
  delivered: z.number().nullable().describe('delivered / sent; null when nothing was sent'),
  opened: z.number().nullable().describe('opened / delivered; null when nothing was delivered'),
});
const seriesKey = z.object(Object.fromEntries(STATS_DIMENSIONS.map((d) => [d, z.string().nullable().optional()])) as Record<StatsDimension, z.ZodOptional<z.ZodNullable<z.ZodString>>>);

const statsView = z.object({
  interval: z.enum(STATS_INTERVALS),
  from: z.string(),
  to: z.string(),
  series: z.array(z.object({
    key: seriesKey.describe('The groupBy values of this series; null for no campaign / variant'),
    points: z.array(fields.extend({ t: z.string().describe('Start of the point') })).describe('One per interval from `from` to `to`, zeros included'),
    totals: fields,
    rates,
  })),
  totals: fields,
  rates,
});

const errorsView = z.object({
  from: z.string(),
  to: z.string(),
  channels: z.array(z.object({
    channel: z.string(),
    total: z.number().int().describe('Every error counted on this channel, listed or not'),
    reasons: z.array(z.object({
      code: z.string(),
      status: z.enum(['failed', 'invalid', 'expired', 'retried']).describe('How the delivery ended, or `retried` for an attempt that was retried'),
      count: z.number().int(),
    })),
  })).describe('Busiest channel first'),
});

type Fields = Record<StatsField, number>;
const zeros = (): Fields => Object.fromEntries(STATS_FIELDS.map((f) => [f, 0])) as Fields;
const rateOf = (f: Fields) => ({
  delivered: f.sent > 0 ? f.delivered / f.sent : null,
  opened: f.delivered > 0 ? f.opened / f.delivered : null,
});

/**
 * The range asked for, defaulted and checked: `from` rounded down to the step (minute rollups
 * cannot be split), at most `maxSteps` steps long.
 */
function window(q: { from?: string | undefined; to?: string | undefined }, step: number, defaultWindowMs: number, maxSteps: number, unit: string): { from: Date; to: Date } {
  // Without `to`, the range ends with the current interval: the last point is the one filling up.
  const to = q.to ? new Date(q.to) : new Date(Math.ceil((Date.now() + 1) / step) * step);
  const fromRaw = q.from ? new Date(q.from) : new Date(to.getTime() - defaultWindowMs);
  const from = new Date(Math.floor(fromRaw.getTime() / step) * step);
  const invalid = (message: string) => new ApiError('validation_failed', `query.from: ${message}`, [{ path: 'query.from', message, code: 'too_big' }]);
  if (from >= to) throw invalid('must be before query.to');
  const steps = Math.ceil((to.getTime() - from.getTime()) / step);
  if (steps > maxSteps) throw invalid(`the range spans ${steps} ${unit}s; at most ${maxSteps}: narrow from/to${unit === 'minute' || unit === 'hour' ? ' or use a coarser interval' : ''}`);
  return { from, to };
}

export function statsRouter(ctx: Context): Router {
  const r = Router();
  const { stats } = ctx.repos;

  route(
    r,
    {
      method: 'get', path: '/v1/stats', tag: 'stats', auth: 'stats',
      summary: 'Time series of sent / delivered / opened / failed / invalid / expired, grouped by channel, platform, campaign or variant, with rates',
      query: statsQuery,
      responses: { 200: { description: 'Series, totals and rates (rates: delivered / sent, opened / delivered)', schema: statsView } },
    },
    async (_req, res, { query }) => {
      const appId = appOf(res, 'stats');
      const { from, to } = window(query, STEP_MS[query.interval], DEFAULT_WINDOW_MS[query.interval], MAX_POINTS, query.interval);
      const where = Object.fromEntries(STATS_DIMENSIONS.flatMap((d) => (query[d] ? [[d, query[d]]] : [])));
      const rows = await stats.series(appId, { from, to, interval: query.interval, groupBy: query.groupBy, where });

      const step = STEP_MS[query.interval];
      const slots = Math.ceil((to.getTime() - from.getTime()) / step);
      const series = new Map<string, { key: Record<string, string | null>; points: Fields[]; totals: Fields }>();
      const totals = zeros();
      for (const row of rows) {
        const id = JSON.stringify(query.groupBy.map((d) => row.key[d]));
        let s = series.get(id);
        if (!s) {
          const key = Object.fromEntries(query.groupBy.map((d) => [d, publicValue(d, row.key[d] ?? '')]));
          s = { key, points: Array.from({ length: slots }, zeros), totals: zeros() };
          series.set(id, s);
        }
        const slot = Math.floor((row.t.getTime() - from.getTime()) / step);
        s.points[slot]![row.status] += row.n;
        s.totals[row.status] += row.n;
        totals[row.status] += row.n;
      }
      const busiest = [...series.values()].sort((a, b) => volume(b.totals) - volume(a.totals)).slice(0, query.limit);
      res.json({
        interval: query.interval,
        from: from.toISOString(),
        to: to.toISOString(),
        series: busiest.map((s) => ({
          key: s.key,
          points: s.points.map((p, i) => ({ t: new Date(from.getTime() + i * step).toISOString(), ...p })),
          totals: s.totals,
          rates: rateOf(s.totals),
        })),
        totals,
        rates: rateOf(totals),
      });
    },
  );

  route(
    r,
    {
      method: 'get', path: '/v1/stats/errors', tag: 'stats', auth: 'stats',
      summary: 'The top error reasons per channel with counts',
      query: errorsQuery,
      responses: { 200: { description: 'Error reasons by channel', schema: errorsView } },
    },
    async (_req, res, { query }) => {
      const appId = appOf(res, 'stats');
      const { from, to } = window(query, STEP_MS.minute, STEP_MS.day, MAX_ERROR_DAYS * 1440, 'minute');
      const rows = await stats.errors(appId, from, to, query.channel);
      const channels = new Map<string, { channel: string; total: number; reasons: { code: string; status: string; count: number }[] }>();
      for (const row of rows) {
        const c = channels.get(row.channel) ?? { channel: row.channel, total: 0, reasons: [] };
        channels.set(row.channel, c);
        c.total += row.n;
        if (c.reasons.length < query.limit) c.reasons.push({ code: row.code, status: row.status, count: row.n });
      }
      res.json({ from: from.toISOString(), to: to.toISOString(), channels: [...channels.values()].sort((a, b) => b.total - a.total) });
    },
  );

  return r;
}

/** Stored `''` means "no campaign / no variant": null in the API. */
function publicValue(d: StatsDimension, v: string): string | null {
  return (d === 'campaign' || d === 'variant') && v === '' ? null : v;
}

function volume(f: Fields): number {
  return STATS_FIELDS.reduce((n, k) => n + f[k], 0);
}
