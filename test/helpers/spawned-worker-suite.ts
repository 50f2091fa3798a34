/**
 * The setup shared by the tests that run the worker as a separate process and stop it
 * (crash.test.ts, drain.test.ts, recall-crash.test.ts): the provider mocks, an in-process relay
 * serving only the API, and the spawned workers, each killed at the end if still running.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import { sql } from 'kysely';
import { newApp, spawnWorker, startTestRelay, type TestRelay, type WorkerProcess } from './harness.js';
import { startProviderMocks } from './providers.js';

export type ProviderMocks = Awaited<ReturnType<typeof startProviderMocks>>;

export interface SpawnedWorkerSuite {
  /** The API-only relay (set once `before` has run). */
  readonly t: TestRelay;
  readonly mocks: ProviderMocks;
  /** Every worker spawned through {@link spawn}; `after` SIGKILLs the ones still alive. */
  readonly children: ChildProcess[];
  /** The isolated environment of this suite, pointed at the mocks, with `extra` on top. */
  workerEnv(extra: Record<string, string>): Record<string, string>;
  /** Spawns a worker with `env` and tracks it for the clean-up. */
  spawn(env: Record<string, string>): WorkerProcess;
  /**
   * A new app with the APNs mock's credentials and `count` iOS devices with one APNs token each:
   * device ids `<idPrefix>000001`…, tokens `<tokenPrefix>` + the hex index padded to 64 characters,
   * tagged `tag` when given.
   */
  appWithApnsDevices(opts: { count: number; idPrefix: string; tokenPrefix: string; tag?: string }): ReturnType<typeof newApp>;
}

/** Registers the suite's `before`/`after` hooks; `apnsDelayMs` slows the APNs mock's answers. */
export function spawnedWorkerSuite(mockOptions: { apnsDelayMs: number }): SpawnedWorkerSuite {
  let t: TestRelay | undefined;
  let mocks: ProviderMocks | undefined;
  const children: ChildProcess[] = [];
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('spawnedWorkerSuite: used before its before() hook ran');
    return v;
  };

  before(async () => {
    mocks = await startProviderMocks(mockOptions);
    t = await startTestRelay({ ...mocks.env, ROLES: 'api' });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await t?.stop();
    await t?.iso.drop();
    await mocks?.close();
  });

  return {
    get t() {
      return started(t);
    },
    get mocks() {
      return started(mocks);
    },
    children,
    workerEnv: (extra) => ({ ...started(t).iso.env(started(mocks).env), ...extra }),
    spawn(env) {
      const child = spawnWorker(env);
      children.push(child);
      return child;
    },
    async appWithApnsDevices({ count, idPrefix, tokenPrefix, tag }) {
      const app = await newApp(started(t));
      assert.equal((await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, started(mocks).credentials.apns)).status, 200);
      const db = started(t).relay.ctx.db;
      if (tag === undefined) {
        await sql`
          INSERT INTO devices (app_id, id, platform)
          SELECT ${app.appId}, ${idPrefix}::text || lpad(i::text, 6, '0'), 'ios' FROM generate_series(1, ${count}) AS i`.execute(db);
      } else {
        await sql`
          INSERT INTO devices (app_id, id, platform, tags)
          SELECT ${app.appId}, ${idPrefix}::text || lpad(i::text, 6, '0'), 'ios', ARRAY[${tag}::text] FROM generate_series(1, ${count}) AS i`.execute(db);
      }
      await sql`
        INSERT INTO device_tokens (app_id, device_id, channel, token)
        SELECT ${app.appId}, ${idPrefix}::text || lpad(i::text, 6, '0'), 'apns', ${tokenPrefix}::text || lpad(to_hex(i), 63, '0') FROM generate_series(1, ${count}) AS i`.execute(db);
      return app;
    },
  };
}
