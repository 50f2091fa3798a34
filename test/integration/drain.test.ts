import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { sql } from 'kysely';
import { eventually } from '../helpers/harness.js';
import { spawnedWorkerSuite } from '../helpers/spawned-worker-suite.js';

const DEVICES = 3000;

// Slow answers keep many sends in flight at the moment the signal arrives.
const suite = spawnedWorkerSuite({ apnsDelayMs: 150 });

test('SIGTERM drains in-flight sends: the worker exits 0, nothing is stranded, nothing is sent twice', async () => {
  const { api } = await suite.appWithApnsDevices({ count: DEVICES, idPrefix: 'dev-', tokenPrefix: 'b', tag: 'drain' });

  // A long lock: a job the draining worker failed to finish would stay `active` for the rest of
  // the test instead of being quietly taken back by the stalled-job check.
  const workerEnv = suite.workerEnv({ SEND_BATCH_SIZE: '100', SEND_CONCURRENCY: '4', APNS_MAX_STREAMS: '20', WORKER_LOCK_DURATION: '120s' });
  const first = suite.spawn(workerEnv);
  const pushed = await api('POST', '/v1/push', { to: { tags: { all: ['drain'] } }, notification: { title: 'drain test' } });
  assert.equal(pushed.body.recipients, DEVICES);

  await eventually(async () => (suite.mocks.apns.stats.received >= DEVICES / 6 ? true : undefined), 120_000, 'the worker to be busy');
  first.kill('SIGTERM');
  const [code] = (await once(first, 'exit')) as [number | null];
  assert.equal(code, 0, 'the worker shut down cleanly');
  const seenAtExit = suite.mocks.apns.stats.received;
  assert.ok(seenAtExit < DEVICES, `stopped before the message was done (${seenAtExit})`);

  // Every token the provider saw has its outcome written; no job is left held by the dead process.
  const db = suite.t.relay.ctx.db;
  const sent = await sql<{ n: number }>`SELECT count(*)::int AS n FROM deliveries WHERE message_id = ${pushed.body.id} AND status = 'sent'`.execute(db);
  assert.equal(sent.rows[0]!.n, seenAtExit, 'every request the provider answered is recorded as sent');
  for (const q of suite.t.relay.ctx.queues.all()) assert.equal(await q.getActiveCount(), 0, `no job of ${q.name} is left active`);

  // A new worker finishes the rest at once (no lease or lock to wait out), each token exactly once.
  const second = suite.spawn(workerEnv);
  const msg = await eventually(async () => {
    const m = await api('GET', `/v1/messages/${pushed.body.id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 90_000, 'the second worker to finish the message');
  second.kill('SIGTERM');
  assert.equal(msg.counts.sent, DEVICES, JSON.stringify(msg.counts));
  const seen = new Map<string, number>();
  for (const r of suite.mocks.apns.requests) seen.set(r.token, (seen.get(r.token) ?? 0) + 1);
  assert.equal(seen.size, DEVICES, 'the provider saw every token');
  assert.deepEqual([...seen.values()].filter((n) => n > 1), [], 'no token was sent twice');
  await once(second, 'exit');
});
