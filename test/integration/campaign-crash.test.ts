import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { CampaignScheduler, type Enqueue } from '../../workers/campaign-scheduler.js';
import { CampaignsRepo } from '../../src/db/campaigns-repo.js';
import { Presence } from '../../src/self/presence.js';
import { eventually, newApp, spawnWorker, startTestRelay, type TestRelay, type WorkerProcess } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

let t: TestRelay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const children: WorkerProcess[] = [];

before(async () => {
  mocks = await startProviderMocks();
  // No scheduler in this process: the tests run theirs (as processes, or as instances they control).
  t = await startTestRelay({ ...mocks.env, ROLES: 'api,worker', ROUTE_PAGE_SIZE: '50' });
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await t?.stop();
  await t?.iso.drop();
  await mocks?.close();
});

async function seed(appId: string, tag: string, n: number): Promise<void> {
  const db = t.relay.ctx.db;
  await sql`
    INSERT INTO devices (app_id, id, platform, tags, timezone)
    SELECT ${appId}, ${tag} || '-' || lpad(i::text, 6, '0'), 'ios', ARRAY[${tag}], (ARRAY['Asia/Tokyo', 'Europe/Berlin', NULL])[1 + i % 3]
    FROM generate_series(1, ${n}) AS i`.execute(db);
  await sql`
    INSERT INTO device_tokens (app_id, device_id, channel, token)
    SELECT ${appId}, ${tag} || '-' || lpad(i::text, 6, '0'), 'apns', md5(${tag} || i) || md5(${tag} || i)
    FROM generate_series(1, ${n}) AS i`.execute(db);
}

/** What the campaign left in PostgreSQL and at APNs: every device exactly once. */
async function assertOncePerDevice(appId: string, id: string, tag: string, n: number): Promise<void> {
  const db = t.relay.ctx.db;
  const rows = await sql<{ n: string; devices: string }>`
    SELECT count(*) AS n, count(DISTINCT device_id) AS devices FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE m.app_id = ${appId} AND m.campaign_id = ${id}`.execute(db);
  assert.equal(Number(rows.rows[0]!.n), n, 'one delivery per device');
  assert.equal(Number(rows.rows[0]!.devices), n);
  const caps = await sql<{ n: string; max: number }>`SELECT count(*) AS n, max(count) AS max FROM campaign_caps WHERE app_id = ${appId}`.execute(db);
  assert.equal(Number(caps.rows[0]!.n), n);
  assert.equal(caps.rows[0]!.max, 1, 'each device counted once against its cap');
  const tokens = new Set(
    (await sql<{ token: string }>`SELECT token FROM device_tokens WHERE app_id = ${appId} AND device_id LIKE ${tag + '-%'}`.execute(db)).rows.map((r) => r.token),
  );
  const sends = mocks.apns.requests.filter((r) => tokens.has(r.token) && r.status === 200);
  assert.equal(new Set(sends.map((r) => r.token)).size, n, 'APNs saw every device');
  assert.equal(sends.length, n, 'and each once');
}

test('a scheduler killed with SIGKILL mid-dispatch: the other schedulers finish it: every audience device is dispatched exactly once', { timeout: 600_000 }, async (tc) => {
  const DEVICES = 600;
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  await seed(appId, 'kill', DEVICES);

  // Three schedulers race for the campaign; the one that claims it is killed.
  const env = { ...t.iso.env(mocks.env), CAMPAIGN_TICK: '50ms', CAMPAIGN_LEASE: '2s', LOG_LEVEL: 'info', ROUTE_PAGE_SIZE: '50' };
  const ids = new Map<WorkerProcess, string>();
  for (let i = 0; i < 3; i++) {
    const child = spawnWorker(env, 'scheduler');
    children.push(child);
    child.stdout?.on('data', (b: Buffer) => {
      const m = /"scheduler":"(sch_[A-Za-z0-9_-]+)"/.exec(b.toString());
      if (m) ids.set(child, m[1]!);
    });
  }
  const outputs = () => children.map((c, i) => `--- scheduler ${i} (${ids.get(c) ?? '?'}, exit ${c.exitCode ?? c.signalCode}) ---\n${c.output()}`).join('\n');
  /** Waits for a condition; fails with every scheduler's last output on a timeout or if all died. */
  const waitFor = async <T>(check: () => Promise<T | undefined>, what: string): Promise<T> => {
    try {
      return await eventually(async () => {
        if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) throw new Error('every scheduler exited');
        return check();
      }, 300_000, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${outputs()}`);
    }
  };
  // Started (a loaded CI machine may take many seconds to boot three processes).
  await waitFor(async () => (ids.size === 3 ? true : undefined), 'three schedulers started');

  const created = await api('POST', '/v1/campaigns', {
    name: 'crash',
    audience: { tags: { all: ['kill'] } },
    notification: { title: 'crash test' },
    throttle: { perMinute: 3600 },
    frequencyCap: { perDay: 5 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;

  await waitFor(async () => ((await api('GET', `/v1/campaigns/${id}`)).body.dispatched >= DEVICES / 5 ? true : undefined), 'dispatch under way');
  // Stop the holder (SIGSTOP) before reading the claim, so the claim read is still the holder's
  // when it is killed, however loaded the machine.
  const holderId = async () => (await sql<{ claimed_by: string | null }>`SELECT claimed_by FROM campaigns WHERE id = ${id}`.execute(t.relay.ctx.db)).rows[0]?.claimed_by;
  let first: WorkerProcess | undefined;
  for (;;) {
    const holder = await holderId();
    first = children.find((c) => ids.get(c) === holder);
    if (!first) {
      assert.equal(holder ?? null, null, `the claiming scheduler is one of ours (${holder})`);
      await new Promise((r) => setTimeout(r, 20)); // between two claims
      continue;
    }
    first.kill('SIGSTOP');
    if ((await holderId()) === holder) break;
    first.kill('SIGCONT'); // the claim moved on in between: try again
  }
  first.kill('SIGKILL');
  await once(first, 'exit');
  const atKill = (await api('GET', `/v1/campaigns/${id}`)).body.dispatched as number;
  assert.ok(atKill < DEVICES, 'killed before the campaign was dispatched');

  // The killed one is restarted; it and the two others race for the orphaned campaign once the
  // dead one's lease ends.
  const restarted = spawnWorker(env, 'scheduler');
  children.push(restarted);
  const done = await waitFor(async () => {
    const c = await api('GET', `/v1/campaigns/${id}`);
    return c.body.state === 'completed' && c.body.counts.queued === 0 ? c.body : undefined;
  }, 'the campaign to finish after the kill');
  assert.equal(done.dispatched, DEVICES);
  assert.equal(done.runs.length, 1, 'the run was not fired twice');
  assert.equal(done.counts.sent, DEVICES);
  await assertOncePerDevice(appId, id, 'kill', DEVICES);
  tc.diagnostic(`dispatched ${atKill} before the kill`);
  // The next test drives its own schedulers.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
});

/** A scheduler that dies right after committing a page, before its send jobs are queued. */
class DiesAfterCommit extends CampaignScheduler {
  died = 0;
  protected override enqueue(_appId: string, _e: Enqueue): Promise<void> {
    this.died++;
    return Promise.reject(new Error('killed between the commit and the queueing'));
  }
}

test('a scheduler that dies between committing a page and queueing its sends: the next one queues them at once', { timeout: 300_000 }, async () => {
  const DEVICES = 150;
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  await seed(appId, 'gap', DEVICES);
  const ctx = t.relay.ctx;
  const presence = new Presence(ctx.queues.connection, ctx.config.QUEUE_PREFIX).lookup;

  const created = await api('POST', '/v1/campaigns', { name: 'gap', audience: { tags: { all: ['gap'] } }, notification: { title: 'gap' }, frequencyCap: { perDay: 5 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;

  // The first scheduler starts the run and commits one page (50 devices), then "dies": it never
  // queues that page's sends and never releases its claim.
  const dying = new DiesAfterCommit(ctx, presence, { tickMs: 50, leaseMs: 1000 });
  const repo = new CampaignsRepo(ctx.db);
  await eventually(async () => ((await repo.claimDue(dying.id, ctx.clock.now(), 1000, 1, [])).length === 1 ? true : undefined), 30_000, 'the first scheduler claims the campaign');
  let step = await dying.step(appId, id); // starts the run
  assert.equal(step.kind, 'wait');
  await assert.rejects(dying.step(appId, id), /killed between/);
  assert.equal(dying.died, 1);
  const mid = (await api('GET', `/v1/campaigns/${id}`)).body;
  assert.equal(mid.dispatched, 50, 'one page committed');
  assert.equal(mid.counts.queued, 50, 'and not sent');

  // A fresh scheduler takes over once the claim lapses, and queues the orphaned page at once
  // (not after the rows' five-minute router lease), then dispatches the rest.
  const next = new CampaignScheduler(ctx, presence, { tickMs: 50, leaseMs: 1000 });
  next.start();
  try {
    const done = await eventually(async () => {
      const c = (await api('GET', `/v1/campaigns/${id}`)).body;
      return c.state === 'completed' && c.counts.sent === DEVICES ? c : undefined;
    }, 120_000, 'every device sent after the takeover');
    assert.equal(done.dispatched, DEVICES);
    assert.equal(done.runs.length, 1);
    await assertOncePerDevice(appId, id, 'gap', DEVICES);
    step = await dying.step(appId, id);
    assert.equal(step.kind, 'lost', 'the dead scheduler no longer holds the campaign');
  } finally {
    await next.stop();
  }
});
