import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

const DEVICES = 600;

/** Scheduler id (as it claims campaigns) → its process. */
const byScheduler = new Map<string, ChildProcess>();

/** The scheduler role as its own OS process, so the test can SIGKILL it mid-dispatch. */
function spawnScheduler(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, ...env, ROLES: 'scheduler', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Kept for the failure message: a scheduler that cannot start says why.
  const log = (b: Buffer) => {
    const text = b.toString();
    const m = /"scheduler":"(sch_[A-Za-z0-9_-]+)"/.exec(text);
    if (m) byScheduler.set(m[1]!, child);
    output = (output + text).slice(-4000);
  };
  child.stdout?.on('data', log);
  child.stderr?.on('data', log);
  return child;
}

let output = '';
let t: TestRelay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const children: ChildProcess[] = [];

before(async () => {
  mocks = await startProviderMocks();
  t = await startTestRelay({ ...mocks.env, ROLES: 'api,worker' });
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await t?.stop();
  await t?.iso.drop();
  await mocks?.close();
});

test('a scheduler killed with SIGKILL mid-dispatch: the other schedulers finish it: every audience device is dispatched exactly once', { timeout: 300_000 }, async (tc) => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  await sql`
    INSERT INTO devices (app_id, id, platform, tags, timezone)
    SELECT ${appId}, 'dev-' || lpad(i::text, 6, '0'), 'ios', ARRAY['crash'], (ARRAY['Asia/Tokyo', 'Europe/Berlin', NULL])[1 + i % 3]
    FROM generate_series(1, ${DEVICES}) AS i`.execute(t.relay.ctx.db);
  await sql`
    INSERT INTO device_tokens (app_id, device_id, channel, token)
    SELECT ${appId}, 'dev-' || lpad(i::text, 6, '0'), 'apns', 'a' || lpad(to_hex(i), 63, '0') FROM generate_series(1, ${DEVICES}) AS i`.execute(t.relay.ctx.db);

  const env = { ...t.iso.env(mocks.env), CAMPAIGN_TICK: '50ms', CAMPAIGN_LEASE: '2s' };
  const t0 = Date.now();
  // Three schedulers race for the campaign from the start; the one that claims it is killed.
  children.push(spawnScheduler(env), spawnScheduler(env), spawnScheduler(env));
  const created = await api('POST', '/v1/campaigns', {
    name: 'crash',
    audience: { tags: { all: ['crash'] } },
    notification: { title: 'crash test' },
    throttle: { perMinute: 3600 },
    frequencyCap: { perDay: 5 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;

  await eventually(async () => ((await api('GET', `/v1/campaigns/${id}`)).body.dispatched >= DEVICES / 5 ? true : undefined), 120_000, 'dispatch under way').catch((err: Error) => {
    throw new Error(`${err.message}; scheduler output: ${output}`);
  });
  const holder = await sql<{ claimed_by: string | null }>`SELECT claimed_by FROM campaigns WHERE id = ${id}`.execute(t.relay.ctx.db);
  const first = byScheduler.get(holder.rows[0]?.claimed_by ?? '');
  assert.ok(first, `the claiming scheduler is known (${holder.rows[0]?.claimed_by})`);
  first.kill('SIGKILL');
  await once(first, 'exit');
  const killedAt = Date.now() - t0;
  const atKill = (await api('GET', `/v1/campaigns/${id}`)).body.dispatched as number;
  assert.ok(atKill < DEVICES, 'killed before the campaign was dispatched');

  // The two others race for the orphaned campaign once the dead one's lease ends.
  const done = await eventually(async () => {
    const c = await api('GET', `/v1/campaigns/${id}`);
    return c.body.state === 'completed' && c.body.counts.queued === 0 ? c.body : undefined;
  }, 150_000, 'the campaign to finish after the restart');

  const doneAt = Date.now() - t0;
  assert.equal(done.dispatched, DEVICES);
  assert.equal(done.runs.length, 1, 'the run was not fired twice');
  assert.equal(done.counts.sent, DEVICES);
  const rows = await sql<{ n: string; devices: string }>`
    SELECT count(*) AS n, count(DISTINCT device_id) AS devices FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE m.app_id = ${appId} AND m.campaign_id = ${id}`.execute(t.relay.ctx.db);
  assert.equal(Number(rows.rows[0]!.n), DEVICES, 'one delivery per device');
  assert.equal(Number(rows.rows[0]!.devices), DEVICES);
  const caps = await sql<{ n: string; max: number }>`SELECT count(*) AS n, max(count) AS max FROM campaign_caps WHERE app_id = ${appId}`.execute(t.relay.ctx.db);
  assert.equal(Number(caps.rows[0]!.n), DEVICES);
  assert.equal(caps.rows[0]!.max, 1, 'each device counted once against its cap');
  const seen = new Set(mocks.apns.requests.map((r) => r.token));
  assert.equal(seen.size, DEVICES, 'APNs saw every device');
  tc.diagnostic(`dispatched ${atKill} before the kill at ${killedAt} ms; done at ${doneAt} ms`);
});
