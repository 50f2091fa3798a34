import { z } from 'zod';
import { channelConfigShape } from '../providers/channels.js';
import { MAX_TTL_SECONDS } from './core/push-request.js';

/**
 * The one place environment variables are read. Everything else receives a frozen `Config`.
 * Every variable here is listed, with its default, in `.env.example`.
 */

const ROLE_NAMES = ['api', 'worker', 'gateway', 'scheduler'] as const;
export type Role = (typeof ROLE_NAMES)[number];

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const url = z.string().url();
/** Durations accept plain milliseconds or a unit suffix: `10s`, `500ms`, `5m`, `2h`, `30d`. */
const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s|m|h|d)?$/, 'expected a duration such as 10s, 500ms, 5m, 2h or 30d')
  .transform(parseDuration);

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Math.round(Number(m[1]) * unit);
}

/** A request budget, `<requests>/<window>` (`1000/1s`, `600/1m`), or `off`. */
export interface RateLimit {
  points: number;
  seconds: number;
}
const rateLimit = z
  .string()
  .regex(/^(off|\d+\/\d+(s|m|h))$/, 'expected <requests>/<window> such as 1000/1s or 600/1m, or off')
  .transform((s): RateLimit | null => {
    if (s === 'off') return null;
    const [points, window] = s.split('/') as [string, string];
    return { points: Number(points), seconds: parseDuration(window) / 1000 };
  })
  .refine((l) => l === null || (l.points > 0 && l.seconds > 0), 'a rate limit needs at least 1 request per window');

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port.default(3000),
  HOST: z.string().default('0.0.0.0'),
  /** What devices are told to connect to; defaults to this host's name as the API saw it. */
  PUBLIC_HOST: z.string().optional(),
  GATEWAY_MQTT_PORT: port.default(1884),
  /** PEM certificate chain and key files: with both set, the gateway also serves MQTT over TLS and wss. */
  GATEWAY_TLS_CERT: z.string().min(1).optional(),
  GATEWAY_TLS_KEY: z.string().min(1).optional(),
  GATEWAY_MQTTS_PORT: port.default(8883),
  GATEWAY_WSS_PORT: port.default(8084),
  /** /healthz, /readyz and /metrics of a process with neither the api nor the gateway role (default: PORT). */
  HEALTH_PORT: port.optional(),
  ROLES: z
    .string()
    .default('api,worker,gateway,scheduler')
    .transform((s) => s.split(',').map((r) => r.trim()).filter(Boolean))
    .pipe(z.array(z.enum(ROLE_NAMES)).min(1)),
  REDIS_URL: url.default('redis://127.0.0.1:6379'),
  /**
   * Seed nodes of a Redis Cluster, `host:port,host:port`. Set, Relay connects to the cluster
   * (credentials and TLS from REDIS_URL) and QUEUE_PREFIX becomes a hash tag (`{relay}`).
   */
  REDIS_CLUSTER_NODES: z.string().regex(/^\s*[^,\s]+:\d+\s*(,\s*[^,\s]+:\d+\s*)*$/, 'expected host:port,host:port').optional(),
  /** Namespaces every BullMQ queue and Redis key, so several Relays (or test files) share one Redis. */
  QUEUE_PREFIX: z.string().regex(/^\{?[A-Za-z0-9:_-]+\}?$/).default('relay'),
  DATABASE_URL: z.string().optional(),
  /** PostgreSQL schema for Relay's tables (tests use a fresh one per file). */
  DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/).default('public'),
  DATABASE_POOL_SIZE: positiveInt.default(10),
  DATA_DIR: z.string().default('./.relay'),
  ADMIN_TOKEN: z.string().min(16, 'ADMIN_TOKEN must be at least 16 characters').optional(),
  CREDENTIALS_KEY: z
    .string()
    .refine((s) => Buffer.from(s, 'base64').length === 32, 'CREDENTIALS_KEY must be 32 bytes, base64-encoded')
    .optional(),
  /** Signs device passwords for the self channel; derived from CREDENTIALS_KEY when unset. */
  DEVICE_TOKEN_SECRET: z.string().min(16).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  MAX_ATTEMPTS: positiveInt.max(100).default(8),
  /** First retry delay; doubles per attempt, with full jitter, capped by RETRY_MAX_DELAY. */
  RETRY_BASE_DELAY: duration.default(1000),
  RETRY_MAX_DELAY: duration.default(600_000),
  SELF_ACK_TIMEOUT: duration.default(10_000),
  /** SMS each app may send per UTC day (explicit sms pushes and fallbacks alike); 0 turns the cap off. */
  SMS_DAILY_CAP: z.coerce.number().int().min(0).default(10_000),
  DEFAULT_TTL: duration.default(2_419_200_000),
  /** Tokens a provider declared dead stay quarantined this long before they are purged. */
  TOKEN_RETENTION: duration.default(2_592_000_000),
  /**
   * Recall (docs/recall.md): what the replacement notification shows where a platform can only
   * overwrite a shown notification (APNs, FCM and vendors by collapse id / tag), and how long a
   * self-channel revoke waits for an offline device before it ends `not_withdrawable`.
   */
  RECALL_NOTICE_TITLE: z.string().min(1).max(50).default('Message withdrawn'),
  RECALL_NOTICE_BODY: z.string().min(1).max(128).default('This message was withdrawn by the sender.'),
  RECALL_REVOKE_WAIT: duration.default(604_800_000),
  /** Minute stats rollups older than this are deleted by the scheduler's sweep. */
  STATS_RETENTION: duration.default(2_592_000_000),
  /** Tokens per send job; a vendor whose requests take more (Huawei, OPPO, vivo: 1,000) gets full ones. */
  SEND_BATCH_SIZE: positiveInt.max(1000).default(500),
  /** Devices the router reads and writes per page. */
  ROUTE_PAGE_SIZE: positiveInt.max(10_000).default(1000),
  SEND_CONCURRENCY: positiveInt.default(8),
  /**
   * Worker processes `npm start` forks for the worker role (needs DATABASE_URL: the embedded
   * PGlite is single-process). `auto`: one per core, at most 4.
   */
  /**
   * Processes serving the API role on PORT (node:cluster; needs DATABASE_URL). Unset:
   * WEB_CONCURRENCY, else 1. With more than one, the other roles' HTTP (health, metrics, the
   * gateway's MQTT over WebSocket) moves to HEALTH_PORT (default PORT + 1).
   */
  API_PROCESSES: positiveInt.max(64).optional(),
  WORKER_PROCESSES: z.union([z.literal('auto'), positiveInt.max(64)]).default('auto'),
  /**
   * V8's young-generation semi-space for forked worker processes, in MB (0: V8's default of 16).
   * A send batch allocates much short-lived garbage (rows, outcomes, HTTP/2 headers); a larger
   * nursery promotes less of it and cut the worker's GC time by about a third in bench:pipeline.
   */
  WORKER_SEMI_SPACE_MB: z.coerce.number().int().min(0).max(1024).default(64),
  /**
   * How long a worker holds a job between lock renewals. A killed worker's jobs are picked up
   * again after about this long; a delivery it had leased waits twice this long.
   */
  WORKER_LOCK_DURATION: duration.default(30_000),
  /**
   * A transactional send job that waited in its queue longer than this (or took longer end to
   * end) makes the bulk lane give way for a moment (src/tx-pressure.ts, docs/scaling.md
   * Isolation). 0 turns that off: fan-outs never wait for single pushes.
   */
  TX_PRESSURE_AFTER: duration.default(50),
  /** How often the scheduler role sweeps expired deliveries and purges old quarantined tokens. */
  SWEEP_INTERVAL: duration.default(30_000),
  /**
   * How long deliveries (and their messages and idempotency keys) are kept: the scheduler drops
   * whole day partitions older than this. Unset: kept forever.
   */
  DELIVERY_RETENTION: duration.optional(),
  /** Day partitions of `deliveries` the scheduler keeps created ahead of today. */
  DELIVERY_PARTITIONS_AHEAD: z.coerce.number().int().min(1).max(60).default(7),
  MAX_BODY_BYTES: positiveInt.default(1_048_576),
  /**
   * HTTP listeners (API, health, MQTT over WebSocket): a client must send its request headers
   * within HTTP_HEADERS_TIMEOUT and the whole request within HTTP_REQUEST_TIMEOUT (0: no limit),
   * or its connection is closed (408): slowloris clients hold a socket that long at most. An idle
   * keep-alive connection closes after HTTP_KEEPALIVE_TIMEOUT (above a load balancer's usual
   * 60 s idle timeout, so the balancer closes first); headers above HTTP_MAX_HEADER_BYTES are a
   * 431; past HTTP_MAX_CONNECTIONS open sockets per listener new ones are closed at once (0: no cap).
   */
  HTTP_HEADERS_TIMEOUT: duration.default(10_000),
  HTTP_REQUEST_TIMEOUT: duration.default(30_000),
  HTTP_KEEPALIVE_TIMEOUT: duration.default(65_000),
  HTTP_MAX_HEADER_BYTES: z.coerce.number().int().min(1024).max(1_048_576).default(16_384),
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(0).default(10_000),
  /** How often the scheduler role looks for campaigns that are due. */
  CAMPAIGN_TICK: duration.default(250),
  /** A scheduler's claim on a campaign it drives; a dead scheduler's campaigns move on after this. */
  CAMPAIGN_LEASE: duration.default(15_000),
  /** API requests per API key, per app (all its keys) and per device (SDK endpoints), in Redis. */
  RATE_LIMIT_API_KEY: rateLimit.prefault('10000/1s'),
  RATE_LIMIT_APP: rateLimit.prefault('20000/1s'),
  RATE_LIMIT_DEVICE: rateLimit.prefault('20/1s'),
});

/**
 * Each channel's endpoint and tuning variables (APNS_ENDPOINT, HUAWEI_OAUTH_ENDPOINT,
 * FCM_CONCURRENCY, …) come from its provider module, with the module's defaults.
 */
const channelSchema = z.object(channelConfigShape());

export type Config = Readonly<
  z.infer<typeof schema> & {
    /** The channels' variables by name, for the provider context (providers/channels.ts). */
    CHANNEL_SETTINGS: Readonly<Record<string, string | number | undefined>>;
  }
>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once; the message names every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  const channels = channelSchema.safeParse(env);
  if (!parsed.success || !channels.success) {
    const issues = [...(parsed.error?.issues ?? []), ...(channels.error?.issues ?? [])];
    const lines = issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  if ((parsed.data.GATEWAY_TLS_CERT === undefined) !== (parsed.data.GATEWAY_TLS_KEY === undefined)) {
    throw new ConfigError('invalid configuration:\n  GATEWAY_TLS_CERT and GATEWAY_TLS_KEY: set both (MQTT over TLS and wss) or neither');
  }
  const data = parsed.data;
  // A day partition is dropped whole: it must outlive the longest TTL (and a day of retries), or
  // a message still deliverable (a self-channel inbox copy, a retry) would vanish without an end.
  if (data.DELIVERY_RETENTION !== undefined && data.DELIVERY_RETENTION < MAX_TTL_SECONDS * 1000 + 86_400_000) {
    throw new ConfigError(`invalid configuration:\n  DELIVERY_RETENTION: at least ${MAX_TTL_SECONDS / 86_400 + 1}d (the longest TTL, ${MAX_TTL_SECONDS / 86_400} days, and a day of retries)`);
  }
  // In a cluster every key of a queue (and Relay's own multi-key commands) must hash to one
  // slot: the prefix is made a hash tag, https://docs.bullmq.io/bull/patterns/redis-cluster
  if (data.REDIS_CLUSTER_NODES && !data.QUEUE_PREFIX.startsWith('{')) data.QUEUE_PREFIX = `{${data.QUEUE_PREFIX}}`;
  return Object.freeze({ ...data, CHANNEL_SETTINGS: Object.freeze(channels.data) });
}
