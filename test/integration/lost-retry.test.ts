import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import type { Provider, SendTarget } from '../../providers/types.js';
import { retry, sent } from '../../src/core/outcome.js';
import { pushRequestSchema } from '../../src/push-request.js';
import { SEND_JOB_OPTIONS } from '../../src/queues.js';
import { createSendWorker } from '../../workers/send.js';
import { PG_URL, eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

/**
 * A send job must never end while one of its rows is still queued and claimable by it. The race
 * that broke this: a retry job (queued before its batch's outcomes are written, on purpose) runs
 * before that write commits, its claim finds the row still leased by the first run, the write
 * commits, and the "who still leases these rows?" read then sees the row queued and unleased, so
 * the job completed and the row waited, with no job, for the sweeper.
 */
let t: TestRelay;
before(async () => {
  // No worker role: the test runs its own send worker with a provider it can watch.
  t = await startTestRelay({ ROLES: 'api,scheduler' });
  await t.relay.sweeper!.idle();
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
});

/** A routed message with one queued delivery per device (its token `tok-<device>`); their ids in device order. */
async function plant(messageId: string, devices: string[], channel: 'apns' | 'fcm', options?: Record<string, unknown>) {
  const { appId } = await newApp(t);
  const { repos, db } = t.relay.ctx;
  const request = pushRequestSchema.parse({ to: { devices }, notification: { title: messageId }, ...(options ? { options } : {}) });
  await repos.messages.insert({ id: messageId, appId, request, state: 'routed', recipients: devices.length, sendAt: null, expiresAt: new Date(Date.now() + 3_600_000) });
  const platform = channel === 'apns' ? 'ios' : 'android';
  await repos.deliveries.insertPage(appId, messageId, devices.map((d) => ({ deviceId: d, platform, channel, token: `tok-${d}`, status: 'queued' as const, error: null })));
  const ids = (await sql<{ id: string }>`SELECT id::text AS id FROM deliveries WHERE message_id = ${messageId} ORDER BY device_id`.execute(db)).rows.map((r) => r.id);
  return { appId, ids };
}

test('a retry job whose claim races the first run committing its outcome still sends the row', async () => {
  const { db, queues } = t.relay.ctx;
  const messageId = 'msg_race';
  const { appId, ids } = await plant(messageId, ['d1', 'd2'], 'apns');
  const [a, b] = ids as [string, string];
  // `a`: attempted once and still leased by the run that attempted it (its outcome not written
  // yet). `b`: attempted once, due, unleased.
  await sql`UPDATE deliveries SET attempts = 1, lease_until = CASE WHEN id = ${a}::bigint THEN now() + interval '60 seconds' END, next_attempt_at = now()
            WHERE message_id = ${messageId}`.execute(db);

  const calls: string[] = [];
  const provider: Provider = {
    channel: 'apns',
    async send(_content, targets: readonly SendTarget[]) {
      calls.push(...targets.map((x) => x.token));
      return targets.map((x) => sent(`p-${x.deliveryId}`));
    },
    async close() {},
  };

  // Another session holds `b` the way a concurrent outcome write does: the job's claim waits for
  // it on `b` with its snapshot already taken, in which `a` is leased.
  const other = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.iso.schema}` });
  await other.connect();
  const worker = createSendWorker(t.relay.ctx, 'apns', { get: async () => provider });
  try {
    const otherPid = (await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await other.query('BEGIN');
    await other.query('SELECT id FROM deliveries WHERE id = $1 FOR UPDATE', [b]);
    const job = await queues.send('apns').add('send', { appId, messageId, ids: [a, b] }, { ...SEND_JOB_OPTIONS, jobId: `race.${a}` });

    await eventually(async () => {
      const r = await other.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [otherPid]);
      return Number(r.rows[0]!.n) > 0 ? true : undefined;
    }, 20_000, 'the job claim to wait on the locked row');

    // The first run's outcome for `a` commits (retry later: queued, unleased), and `b` was sent
    // by whoever held it.
    await other.query(`UPDATE deliveries SET lease_until = NULL, next_attempt_at = now(), error = '{"code":"timeout","message":"no result"}' WHERE id = $1`, [a]);
    await other.query(`UPDATE deliveries SET status = 'sent', lease_until = NULL, next_attempt_at = NULL WHERE id = $1`, [b]);
    await other.query('COMMIT');

    const state = await eventually(async () => {
      const r = await sql<{ status: string; attempts: number }>`SELECT status, attempts FROM deliveries WHERE id = ${a}::bigint`.execute(db);
      const row = r.rows[0]!;
      if (row.status !== 'queued') return row;
      // The job ended with `a` still queued: nothing will ever take it (short of the sweeper).
      if (await job.isCompleted()) return row;
      return undefined;
    }, 20_000, 'the row to leave queued or the job to end');
    assert.equal(state.status, 'sent', `the row the first run left queued is sent by the retry job, not left behind (job ended with it ${state.status})`);
    assert.equal(state.attempts, 2);
    assert.deepEqual(calls, ['tok-d1'], 'only the released row is sent, once');
    await eventually(async () => ((await job.isCompleted()) ? true : undefined), 20_000, 'the job to complete');
  } finally {
    await other.end().catch(() => undefined);
    await worker.close();
  }
});

test('a retry job is never a silent no-op: its id is not one an earlier retry of the same rows used', async () => {
  const { db, queues } = t.relay.ctx;
  const messageId = 'msg_mixed';
  const { appId, ids } = await plant(messageId, ['d1', 'd2'], 'apns', { retry: { maxAttempts: 10, backoff: { type: 'fixed', delayMs: 50 } } });
  const [a, b] = ids as [string, string];
  // One batch whose rows have had different numbers of attempts, as a sweeper or reconciliation
  // chunk gathers them: `a` never attempted, `b` twice.
  await sql`UPDATE deliveries SET lease_until = NULL, attempts = CASE WHEN id = ${b}::bigint THEN 2 ELSE 0 END WHERE message_id = ${messageId}`.execute(db);

  // `b` is sent on its second try here; `a` needs four tries.
  const seen = new Map<string, number>();
  const provider: Provider = {
    channel: 'apns',
    async send(_content, targets: readonly SendTarget[]) {
      return targets.map((x) => {
        const k = (seen.get(x.token) ?? 0) + 1;
        seen.set(x.token, k);
        return k >= (x.token === 'tok-d2' ? 2 : 4) ? sent(`p-${x.deliveryId}`) : retry({ code: 'timeout', message: 'no result' });
      });
    },
    async close() {},
  };
  const worker = createSendWorker(t.relay.ctx, 'apns', { get: async () => provider });
  try {
    await queues.send('apns').add('send', { appId, messageId, ids: [a, b] }, { ...SEND_JOB_OPTIONS, jobId: `mixed.${a}` });
    const state = await eventually(async () => {
      const r = await sql<{ id: string; status: string; attempts: number }>`SELECT id::text AS id, status, attempts FROM deliveries WHERE message_id = ${messageId} ORDER BY id`.execute(db);
      if (r.rows.every((x) => x.status !== 'queued')) return r.rows;
      // No job waiting or running while a row is queued: its retry job was never added (a retry
      // job is queued before its batch's outcomes are written, so there is no gap in between).
      const counts = await queues.send('apns').getJobCounts('active', 'wait', 'delayed', 'prioritized');
      return Object.values(counts).every((n) => n === 0) ? r.rows : undefined;
    }, 30_000, 'every row to end, or no job left');
    assert.deepEqual(
      state.map((x) => [x.id, x.status]),
      [[a, 'sent'], [b, 'sent']],
      `every row ends sent (rows: ${JSON.stringify(state)})`,
    );
    assert.equal(seen.get('tok-d1'), 4);
    assert.equal(seen.get('tok-d2'), 2);
  } finally {
    await worker.close();
  }
});

test('the sweep forgetting ended rows never forgets one moved back to queued meanwhile', async () => {
  const { repos, db } = t.relay.ctx;
  const messageId = 'msg_prune';
  const id = (await plant(messageId, ['d1'], 'fcm')).ids[0]!;
  // Ended by a path that leaves its open id for the sweep to forget (a vendor's receipt saying it
  // dropped the message), about to be handed to the self channel (a fallback).
  await sql`UPDATE deliveries SET status = 'failed', lease_until = NULL WHERE id = ${id}::bigint`.execute(db);
  const isOpen = async () => (await sql<{ n: string }>`SELECT count(*) AS n FROM delivery_open WHERE id = ${id}::bigint`.execute(db)).rows[0]!.n === '1';
  assert.ok(await isOpen());

  // Another session holds the open id, so the prune reads the row as ended, then waits to delete.
  const other = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.iso.schema}` });
  await other.connect();
  try {
    const otherPid = (await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await other.query('BEGIN');
    await other.query('SELECT id FROM delivery_open WHERE id = $1 FOR UPDATE', [id]);
    const blockedBy = async (pid: number) =>
      Number((await other.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [pid])).rows[0]!.n);
    const pruning = repos.deliveries.pruneOpen();
    await eventually(async () => ((await blockedBy(otherPid)) > 0 ? true : undefined), 20_000, 'the prune to wait on the open id');
    // The fallback moves the row back to queued while the prune is under way.
    let moved: Awaited<ReturnType<typeof repos.deliveries.requeueOnChannel>> | undefined;
    const moving = repos.deliveries.requeueOnChannel([id], 'self').then((m) => (moved = m));
    const prunePid = (await other.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, [otherPid])).rows[0]!.pid;
    // Either the move is done, or it waits for the prune (which then must not forget it).
    await eventually(async () => (moved || (await blockedBy(prunePid)) > 0 ? true : undefined), 20_000, 'the move to end or wait');
    await other.query('COMMIT');
    await pruning;
    await moving;
    assert.deepEqual(moved, [{ messageId, ids: [id] }]);
    const row = (await sql<{ status: string; channel: string }>`SELECT status, channel FROM deliveries WHERE id = ${id}::bigint`.execute(db)).rows[0]!;
    assert.deepEqual(row, { status: 'queued', channel: 'self' });
    assert.ok(await isOpen(), 'a queued row stays open, or the sweeper can never find it stranded');
  } finally {
    await other.end().catch(() => undefined);
  }
});
