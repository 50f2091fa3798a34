import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startRelay, type Relay } from '../../src/relay.js';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * A fresh PostgreSQL schema and a unique BullMQ prefix for one test file; `drop()` removes only
 * what this isolation created.
 */
export class Isolation {
  readonly schema = `relay_t_${randomBytes(5).toString('hex')}`;
  readonly prefix = `relay-t-${randomBytes(5).toString('hex')}`;

  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: PG_URL,
      DATABASE_SCHEMA: this.schema,
      REDIS_URL,
      QUEUE_PREFIX: this.prefix,
      ADMIN_TOKEN: 'test-operator-token-0123456789',
      CREDENTIALS_KEY: Buffer.alloc(32, 7).toString('base64'),
      DATA_DIR: `/tmp/${this.prefix}`,
      LOG_LEVEL: 'silent',
      PORT: '0',
      // The gateway role binds an ephemeral MQTT port (relay.mqttPort); 1883/1884 may be taken.
      GATEWAY_MQTT_PORT: '0',
      HOST: '127.0.0.1',
      SWEEP_INTERVAL: '3600s',
      WORKER_PROCESSES: '1',
      ...extra,
    };
  }

  async drop(): Promise<void> {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    await client.end();
    const redis = new Redis(REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${this.prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
}

export interface TestRelay {
  relay: Relay;
  config: Config;
  base: string;
  adminToken: string;
  iso: Isolation;
  stop(): Promise<void>;
}

/** A Relay role (the worker, unless told) as its own OS process, so a test can SIGKILL or SIGTERM it mid-batch. */
export interface WorkerProcess extends ChildProcess {
  /** The last lines the worker wrote, to say why it died or stalled when a test times out. */
  output(): string;
}

export function spawnWorker(env: Record<string, string>, roles = 'worker'): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, ...env, ROLES: roles },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as WorkerProcess;
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(...chunk.toString().split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 40));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.output = () => tail.join('\n');
  return child;
}

/**
 * Waits like eventually() for a spawned worker to reach a state, failing at once (with its last
 * output) if it exits first, instead of timing out with no clue.
 */
export async function eventuallyWhileAlive<T>(child: WorkerProcess, check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    const exited = child.exitCode !== null || child.signalCode !== null;
    if (exited || Date.now() > until) {
      const why = exited ? `the worker exited (${child.exitCode ?? child.signalCode}) before` : 'timed out waiting for';
      throw new Error(`${why} ${what}\n--- worker output ---\n${child.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts Relay in this process on its own schema and prefix, with every role unless told. */
export async function startTestRelay(extra: Record<string, string> = {}, iso = new Isolation()): Promise<TestRelay> {
  const config = loadConfig({ ...iso.env(), ...extra });
  const relay = await startRelay(config, createLogger(config.LOG_LEVEL), () => undefined);
  return {
    relay,
    config,
    base: `http://127.0.0.1:${relay.port}`,
    adminToken: config.ADMIN_TOKEN!,
    iso,
    async stop() {
      await relay.stop();
    },
  };
}

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** A tiny JSON client for the REST API. */
export function client(base: string, token?: string) {
  return async function call<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
    const res = await fetch(base + path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };
}

/** Creates an app and a key with every scope; returns a client bound to that key. */
export async function newApp(t: TestRelay, id = `app_${randomBytes(4).toString('hex')}`) {
  const op = client(t.base, t.adminToken);
  const app = await op('POST', '/v1/apps', { id, name: id });
  if (app.status !== 201) throw new Error(`create app: ${app.status} ${JSON.stringify(app.body)}`);
  const key = await op('POST', `/v1/apps/${id}/keys`, { scopes: ['push', 'devices', 'campaigns', 'stats', 'admin'] });
  if (key.status !== 201) throw new Error(`create key: ${key.status} ${JSON.stringify(key.body)}`);
  return { appId: id, key: key.body.key as string, api: client(t.base, key.body.key as string) };
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
