import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'bullmq';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/** A connection to one Redis server or to a Redis Cluster: both speak the commands Relay uses. */
export type RedisClient = Redis | Cluster;

/** How to reach Redis: a server's options, or the seed nodes of a cluster with per-node options. */
export interface RedisConfig {
  /** Options of every connection Relay opens (for a cluster: of each node connection). */
  options: RedisOptions;
  /** Seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES); the rest are discovered. */
  cluster?: { host: string; port: number }[];
}

export interface RedisHandle {
  config: RedisConfig;
  stop(): Promise<void>;
}

/**
 * A new connection (a Cluster client with cluster nodes). In a cluster, BullMQ's scripts and
 * Relay's multi-key commands need all keys of one queue (and the presence keys) in one hash slot:
 * QUEUE_PREFIX is then a hash tag (`{relay}`, see config.ts), as BullMQ's guide asks:
 * https://docs.bullmq.io/bull/patterns/redis-cluster
 */
export function createRedis(cfg: RedisConfig, opts: { autoPipelining?: boolean } = {}): RedisClient {
  const pipelining = opts.autoPipelining ? { enableAutoPipelining: true } : {};
  const options: RedisOptions = { ...cfg.options, maxRetriesPerRequest: null };
  if (!cfg.cluster) return new Redis({ ...options, ...pipelining });
  return new Cluster(cfg.cluster, {
    ...pipelining,
    redisOptions: options,
    // BullMQ's blocking commands and Relay's scripts must go to the primary of their slot.
    scaleReads: 'master',
    enableReadyCheck: true,
  });
}

/**
 * The `connection` of a BullMQ Worker: options (BullMQ opens its own connections) for one server;
 * for a cluster, a Cluster client that `releaseWith` closes when the worker closes (BullMQ leaves
 * a connection it was given open).
 */
export function bullConnection(cfg: RedisConfig): ConnectionOptions {
  return cfg.cluster ? (createRedis(cfg) as ConnectionOptions) : ({ ...cfg.options, maxRetriesPerRequest: null } as ConnectionOptions);
}

/** Closes a cluster connection made by bullConnection once its worker has closed. */
export function releaseWith<W extends { once(event: 'closed', fn: () => void): unknown; opts: { connection?: unknown } }>(worker: W): W {
  const conn = worker.opts.connection;
  if (conn instanceof Cluster) worker.once('closed', () => conn.disconnect());
  return worker;
}

/** `host:port,host:port` of REDIS_CLUSTER_NODES. */
export function parseClusterNodes(text: string): { host: string; port: number }[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
      if (!m) throw new Error(`REDIS_CLUSTER_NODES: expected host:port, got ${s}`);
      return { host: m[1]!, port: Number(m[2]) };
    });
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * Finds Redis at REDIS_URL. When nothing answers on a local address and `redis-server` is
 * installed, starts one with its data under DATA_DIR (the zero-setup default); otherwise fails
 * with one clear line.
 */
export async function ensureRedis(url: string, dataDir: string, logger: Logger, clusterNodes?: string): Promise<RedisHandle> {
  const u = new URL(url);
  if (clusterNodes) {
    // A cluster is never started here: its nodes' credentials and TLS come from REDIS_URL.
    const options: RedisOptions = {
      username: u.username || undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      tls: u.protocol === 'rediss:' ? {} : undefined,
      maxRetriesPerRequest: null,
    };
    return { config: { options, cluster: parseClusterNodes(clusterNodes) }, stop: async () => undefined };
  }
  const options: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    username: u.username || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  };
  if (await redisAnswers(options)) return { config: { options }, stop: async () => undefined };

  const hasServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!LOCAL_HOSTS.has(u.hostname) || !hasServer) {
    throw new Error(
      `Redis is not reachable at ${u.host}${hasServer ? '' : ' and redis-server is not installed'}: ` +
        'start Redis (>= 6.2) or set REDIS_URL',
    );
  }
  const dir = resolve(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(options.port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''],
    { stdio: 'ignore' },
  );
  logger.info({ port: options.port, dir }, 'started a local redis-server');
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(options)) {
      return {
        config: { options },
        stop: async () => {
          child.kill('SIGTERM');
        },
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not come up on port ${options.port}`);
}

/** Whether a Redis server answers PING at these options (one short-lived connection, no retries). */
export async function redisAnswers(options: RedisOptions): Promise<boolean> {
  const probe = new Redis({ ...options, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}
