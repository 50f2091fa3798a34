import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export interface RedisHandle {
  /** Options for every connection Relay opens (BullMQ needs its own blocking connections). */
  options: RedisOptions;
  stop(): Promise<void>;
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * Finds Redis at REDIS_URL. When nothing answers on a local address and `redis-server` is
 * installed, starts one with its data under DATA_DIR (the zero-setup default); otherwise fails
 * with one clear line.
 */
export async function ensureRedis(url: string, dataDir: string, logger: Logger): Promise<RedisHandle> {
  const u = new URL(url);
  const options: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    username: u.username || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  };
  if (await answers(options)) return { options, stop: async () => undefined };

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
    if (await answers(options)) {
      return {
        options,
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

async function answers(options: RedisOptions): Promise<boolean> {
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
