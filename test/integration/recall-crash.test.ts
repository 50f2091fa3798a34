import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { sql } from 'kysely';
import { eventually, eventuallyWhileAlive } from '../helpers/harness.js';
import { spawnedWorkerSuite } from '../helpers/spawned-worker-suite.js';

const DEVICES = 1500;

const suite = spawnedWorkerSuite({ apnsDelayMs: 40 });

const isReplacement = (r: { payload: unknown }) => (r.payload as { relay_type?: string } | null)?.relay_type === 'revoke';

test('a worker killed with SIGKILL in the middle of a recall: the next one finishes it, every delivery ends with exactly one recall state', async (tc) => {
  const { api } = await suite.appWithApnsDevices({ count: DEVICES, idPrefix: 'rc-', tokenPrefix: 'b', tag: 'recall-crash' });

  const workerEnv = suite.workerEnv({ SEND_BATCH_SIZE: '100', APNS_MAX_STREAMS: '20', WORKER_LOCK_DURATION: '2s' });
  const first = suite.spawn(workerEnv);

  const pushed = await api('POST', '/v1/push', { to: { tags: { all: ['recall-crash'] } }, notification: { title: 'oops' }, options: { collapseKey: 'oops-1' } });
  assert.equal(pushed.body.recipients, DEVICES);
  const id = pushed.body.id as string;
  await eventuallyWhileAlive(first, async () => {
    const m = await api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? true : undefined;
  }, 120_000, 'every delivery sent');

  const del = await api('DELETE', `/v1/messages/${id}`);
  assert.equal(del.status, 200);
  await eventuallyWhileAlive(first, async () => (suite.mocks.apns.requests.filter(isReplacement).length >= 100 ? true : undefined), 120_000, 'the recall under way');
  first.kill('SIGKILL');
  await once(first, 'exit');
  const atKill = suite.mocks.apns.requests.filter(isReplacement).length;
  const before = (await api('GET', `/v1/messages/${id}/recall?limit=1`)).body;
  assert.equal(before.state, 'running', `killed before the recall was done (${atKill} replacements seen)`);

  const second = suite.spawn(workerEnv);
  const done = await eventually(async () => {
    const r = await api('GET', `/v1/messages/${id}/recall?limit=1`);
    return r.body.state === 'done' ? r.body : undefined;
  }, 120_000, 'the recall to finish after the restart');
  second.kill('SIGTERM');

  assert.deepEqual(done.totals, { pending: 0, cancelled: 0, withdrawn: 0, replaced: DEVICES, not_withdrawable: 0 });
  const rows = await sql<{ n: string; d: string }>`
    SELECT count(*) AS n, count(DISTINCT delivery_id) AS d FROM delivery_recalls WHERE message_id = ${id}`.execute(suite.t.relay.ctx.db);
  assert.equal(Number(rows.rows[0]!.n), DEVICES, 'one recall row per delivery');
  assert.equal(Number(rows.rows[0]!.d), DEVICES);

  const seen = new Map<string, number>();
  for (const r of suite.mocks.apns.requests.filter(isReplacement)) seen.set(r.token, (seen.get(r.token) ?? 0) + 1);
  assert.equal(seen.size, DEVICES, 'every token got its replacement');
  const again = [...seen.values()].filter((n) => n > 1).length;
  tc.diagnostic(`${atKill} replacements seen at the kill; ${again} tokens got theirs again after the restart`);
  // Only the page in flight when the worker died (500 deliveries) can be sent twice.
  assert.ok(again <= 500, `at most the page in flight is replaced again (${again})`);
  assert.ok([...seen.values()].every((n) => n <= 2));
});
