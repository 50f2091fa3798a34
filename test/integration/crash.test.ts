import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { sql } from 'kysely';
import { eventually, eventuallyWhileAlive } from '../helpers/harness.js';
import { spawnedWorkerSuite } from '../helpers/spawned-worker-suite.js';

const DEVICES = 4000;

const suite = spawnedWorkerSuite({ apnsDelayMs: 40 });

test('a worker killed with SIGKILL mid-batch loses nothing: every delivery ends once', async (tc) => {
  const { api } = await suite.appWithApnsDevices({ count: DEVICES, idPrefix: 'dev-', tokenPrefix: 'a', tag: 'crash' });

  const workerEnv = suite.workerEnv({
    SEND_BATCH_SIZE: '100',
    SEND_CONCURRENCY: '8',
    APNS_MAX_STREAMS: '40',
    WORKER_LOCK_DURATION: '2s',
  });
  const first = suite.spawn(workerEnv);

  const pushed = await api('POST', '/v1/push', { to: { tags: { all: ['crash'] } }, notification: { title: 'crash test' } });
  assert.equal(pushed.body.recipients, DEVICES);

  await eventuallyWhileAlive(first, async () => (suite.mocks.apns.stats.received >= DEVICES / 4 ? true : undefined), 120_000, 'the first worker to be busy');
  first.kill('SIGKILL');
  await once(first, 'exit');
  const seenAtKill = suite.mocks.apns.stats.received;
  assert.ok(seenAtKill < DEVICES, 'killed before the message was done');

  const second = suite.spawn(workerEnv);
  const msg = await eventuallyWhileAlive(second, async () => {
    const m = await api('GET', `/v1/messages/${pushed.body.id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 120_000, 'the message to finish after the restart').catch(async (err: Error) => {
    // Say where the rows stand, to tell a stranded row from a slow machine.
    const left = await sql<{ status: string; attempts: number; leased: boolean; n: number }>`
      SELECT status, attempts, lease_until > now() AS leased, count(*)::int AS n FROM deliveries
      WHERE message_id = ${pushed.body.id} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`.execute(suite.t.relay.ctx.db);
    throw new Error(`${err.message}\n--- deliveries ---\n${JSON.stringify(left.rows)}`);
  });
  second.kill('SIGTERM');

  assert.equal(msg.counts.sent, DEVICES, `every delivery sent: ${JSON.stringify(msg.counts)}`);
  const rows = await sql<{ token: string; attempts: number; status: string }>`
    SELECT token, attempts, status FROM deliveries WHERE message_id = ${pushed.body.id}`.execute(suite.t.relay.ctx.db);
  assert.equal(rows.rows.length, DEVICES, 'exactly one delivery per device');

  const seen = new Map<string, number>();
  for (const r of suite.mocks.apns.requests) seen.set(r.token, (seen.get(r.token) ?? 0) + 1);
  let resent = 0;
  for (const r of rows.rows) {
    const n = seen.get(r.token) ?? 0;
    assert.ok(n >= 1, `APNs saw ${r.token}`);
    // A second request for a token only ever follows an attempt whose outcome died with the worker.
    assert.ok(n <= r.attempts, `token seen ${n} times but only ${r.attempts} attempts recorded`);
    if (n > 1) resent++;
  }
  tc.diagnostic(`provider had seen ${seenAtKill} at the kill; ${resent} tokens were sent again after the restart`);
  assert.ok(resent <= 8 * 100, `at most the in-flight batches are sent again (${resent})`);
});

test('single pushes on the transactional lane: a worker killed mid-stream loses nothing, and each ends once', async (tc) => {
  const SINGLES = 1200;
  const { api } = await suite.appWithApnsDevices({ count: SINGLES, idPrefix: 'one-', tokenPrefix: 'c' });
  const workerEnv = suite.workerEnv({ SEND_BATCH_SIZE: '50', SEND_CONCURRENCY: '8', APNS_MAX_STREAMS: '40', WORKER_LOCK_DURATION: '2s' });
  const first = suite.spawn(workerEnv);
  const before = suite.mocks.apns.stats.received;

  // One push per device, 32 in flight, while the worker is killed and replaced.
  const ids: string[] = [];
  let next = 0;
  const pushing = Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < SINGLES) {
        const i = ++next;
        const res = await api('POST', '/v1/push', { to: { devices: [`one-${String(i).padStart(6, '0')}`] }, notification: { title: `code ${i}` } });
        assert.equal(res.status, 202);
        assert.equal(res.body.recipients, 1);
        ids.push(res.body.id);
      }
    }),
  );
  await eventuallyWhileAlive(first, async () => (suite.mocks.apns.stats.received - before >= SINGLES / 4 ? true : undefined), 120_000, 'the first worker to be busy');
  first.kill('SIGKILL');
  await once(first, 'exit');
  const seenAtKill = suite.mocks.apns.stats.received - before;
  const second = suite.spawn(workerEnv);
  await pushing;
  assert.ok(seenAtKill < SINGLES, 'killed before every push was sent');

  await eventually(async () => {
    const open = await sql<{ n: string }>`SELECT count(*) AS n FROM deliveries WHERE message_id = ANY(${ids}::text[]) AND status = 'queued'`.execute(suite.t.relay.ctx.db);
    return Number(open.rows[0]!.n) === 0 ? true : undefined;
  }, 120_000, 'every single push to end');
  second.kill('SIGTERM');

  const rows = await sql<{ message_id: string; token: string; attempts: number; status: string }>`
    SELECT message_id, token, attempts, status FROM deliveries WHERE message_id = ANY(${ids}::text[])`.execute(suite.t.relay.ctx.db);
  assert.equal(rows.rows.length, SINGLES, 'exactly one delivery per message');
  assert.equal(new Set(rows.rows.map((r) => r.message_id)).size, SINGLES);
  const seen = new Map<string, number>();
  for (const r of suite.mocks.apns.requests) seen.set(r.token, (seen.get(r.token) ?? 0) + 1);
  let resent = 0;
  for (const r of rows.rows) {
    assert.equal(r.status, 'sent', `every single push sent (${r.message_id}: ${r.status})`);
    const n = seen.get(r.token) ?? 0;
    assert.ok(n >= 1, `APNs saw ${r.token}`);
    assert.ok(n <= r.attempts, `token seen ${n} times but only ${r.attempts} attempts recorded`);
    if (n > 1) resent++;
  }
  const states = await api('GET', `/v1/messages/${ids[0]}`);
  assert.equal(states.body.state, 'done');
  // Routed at accept: no route job was ever queued for these messages.
  assert.equal(await suite.t.relay.ctx.queues.route.getJob(ids[0]!), undefined, 'a single push never takes the router');
  tc.diagnostic(`provider had seen ${seenAtKill} at the kill; ${resent} tokens were sent again after the restart`);
});
