import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { startOwnRedis, type OwnRedis } from '../helpers/redis-server.js';

/**
 * These machines run Redis without persistence: when it restarts, BullMQ's jobs are gone and
 * PostgreSQL must be enough to finish every delivery, at once rather than after the sweeper's
 * grace periods or the router's five-minute leases.
 */
const DEVICES = 3000;

let t: TestRelay;
let redis: OwnRedis;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const children: ChildProcess[] = [];

function spawnRelay(env: Record<string, string>, roles: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, ...env, ROLES: roles }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', () => undefined);
  children.push(child);
  return child;
}

before(async () => {
  redis = await startOwnRedis();
  mocks = await startProviderMocks({ apnsDelayMs: 40 });
  t = await startTestRelay({ ...mocks.env, REDIS_URL: redis.url, ROLES: 'api' });
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await t?.stop();
  await t?.iso.drop();
  await mocks?.close();
  await redis?.stop();
});

async function seed(appId: string, tag: string): Promise<void> {
  const { db } = t.relay.ctx;
  await sql`
    INSERT INTO devices (app_id, id, platform, tags)
    SELECT ${appId}, ${tag} || '-' || i, 'ios', ARRAY[${tag}] FROM generate_series(1, ${DEVICES}) AS i`.execute(db);
  await sql`
    INSERT INTO device_tokens (app_id, device_id, channel, token)
    SELECT ${appId}, ${tag} || '-' || i, 'apns', md5(${tag} || i) || md5(i || ${tag}) FROM generate_series(1, ${DEVICES}) AS i`.execute(db);
}

/** Every delivery of the message sent, each token seen by APNs at least once and never more often than its counted attempts. */
async function assertAllSent(messageId: string): Promise<number> {
  const rows = await sql<{ token: string; attempts: number; status: string }>`
    SELECT token, attempts, status FROM deliveries WHERE message_id = ${messageId}`.execute(t.relay.ctx.db);
  assert.equal(rows.rows.length, DEVICES);
  const seen = new Map<string, number>();
  for (const r of mocks.apns.requests) seen.set(r.token, (seen.get(r.token) ?? 0) + 1);
  let resent = 0;
  for (const r of rows.rows) {
    assert.equal(r.status, 'sent');
    const n = seen.get(r.token) ?? 0;
    assert.ok(n >= 1 && n <= r.attempts, `APNs saw ${r.token} ${n} times with ${r.attempts} attempts counted`);
    if (n > 1) resent++;
  }
  return resent;
}

const workerEnv = () => ({ ...t.iso.env(mocks.env), REDIS_URL: redis.url, SEND_BATCH_SIZE: '100', SEND_CONCURRENCY: '8', APNS_MAX_STREAMS: '40', WORKER_LOCK_DURATION: '5s' });

test('Redis restarted empty under a running Relay: the loss is noticed and PostgreSQL finishes the send within a minute', async (tc) => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  await seed(appId, 'live');
  const worker = spawnRelay(workerEnv(), 'worker,scheduler');

  const before0 = mocks.apns.stats.received;
  const pushed = await api('POST', '/v1/push', { to: { tags: { all: ['live'] } }, notification: { title: 'live' } });
  assert.equal(pushed.body.recipients, DEVICES);
  await eventually(async () => (mocks.apns.stats.received - before0 >= DEVICES / 4 ? true : undefined), 60_000, 'APNs to be busy');

  await redis.restartEmpty(500);
  const back = Date.now();
  await eventually(async () => ((await api('GET', `/v1/messages/${pushed.body.id}`)).body.state === 'done' ? true : undefined), 60_000, 'every delivery to end after Redis came back empty');
  const resent = await assertAllSent(pushed.body.id);
  tc.diagnostic(`done ${Date.now() - back} ms after Redis came back; ${resent} tokens sent twice`);
  worker.kill('SIGKILL');
  await once(worker, 'exit');
});

test('Relay SIGKILLed and Redis back empty: the restarted Relay reconciles from PostgreSQL at start-up', async (tc) => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  await seed(appId, 'dead');
  const first = spawnRelay(workerEnv(), 'worker,scheduler');

  const before0 = mocks.apns.stats.received;
  const pushed = await api('POST', '/v1/push', { to: { tags: { all: ['dead'] } }, notification: { title: 'dead' } });
  await eventually(async () => (mocks.apns.stats.received - before0 >= DEVICES / 4 ? true : undefined), 60_000, 'APNs to be busy');
  first.kill('SIGKILL');
  await once(first, 'exit');
  await redis.restartEmpty();
  const atKill = mocks.apns.stats.received - before0;
  assert.ok(atKill < DEVICES, 'killed before the message was done');

  const up = Date.now();
  spawnRelay(workerEnv(), 'worker,scheduler');
  await eventually(async () => ((await api('GET', `/v1/messages/${pushed.body.id}`)).body.state === 'done' ? true : undefined), 60_000, 'every delivery to end after the restart');
  const resent = await assertAllSent(pushed.body.id);
  tc.diagnostic(`provider had ${atKill} at the kill; done ${Date.now() - up} ms after the restart; ${resent} tokens sent twice`);
});
