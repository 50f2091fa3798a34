import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Worker } from 'bullmq';
import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { sent, type Provider, type PushContent, type SendTarget } from '../../providers/types.js';
import { createRedis } from '../../src/redis.js';
import { BulkGate, TxPressure } from '../../src/tx-pressure.js';
import { createRouteWorker } from '../../workers/route.js';
import { createSendWorker } from '../../workers/send.js';
import { eventually, Isolation, newApp, PG_URL, REDIS_URL, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/**
 * Isolation of the transactional lane (src/tx-pressure.ts, docs/scaling.md): while single pushes
 * flow, the bulk lane of a process runs one batch at a time instead of SEND_CONCURRENCY, so the
 * single pushes do not wait behind a fan-out for CPU and PostgreSQL. Order, not timing: a
 * provider whose bulk calls wait until the test lets them go shows which call starts when.
 */
const FAN = 400;
const BATCH = 20;
const CONCURRENCY = 4;

let t: TestRelay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const workers: Worker[] = [];
let provider: HeldProvider | undefined;

before(async () => {
  mocks = await startProviderMocks({ record: false });
  // The API only: this test runs the router and the send workers itself, on a provider it controls.
  t = await startTestRelay({ ROLES: 'api', SEND_CONCURRENCY: String(CONCURRENCY), SEND_BATCH_SIZE: String(BATCH) });
});
after(async () => {
  // A failed step leaves bulk calls held: let them finish, or closing the workers waits forever.
  if (provider) provider.free = true;
  provider?.release();
  await Promise.all(workers.map((w) => w.close()));
  await t?.stop();
  await t?.iso.drop();
  await mocks?.close();
});

/** An APNs stand-in: single pushes are answered at once, each bulk call when the test releases it. */
class HeldProvider implements Provider {
  readonly channel = 'apns';
  /** Bulk calls in flight, in start order. */
  readonly held: (() => void)[] = [];
  /** How many bulk calls were in flight when each bulk call started. */
  readonly othersAtStart: number[] = [];
  readonly attempts = new Map<string, number>();
  txSent = 0;
  /** Bulk calls answer at once from now on. */
  free = false;

  async send(content: PushContent, targets: readonly SendTarget[]) {
    for (const x of targets) this.attempts.set(x.deliveryId, (this.attempts.get(x.deliveryId) ?? 0) + 1);
    if (content.notification?.title !== 'sale') {
      this.txSent += targets.length;
      return targets.map(() => sent());
    }
    this.othersAtStart.push(this.held.length);
    if (!this.free) {
      await new Promise<void>((resolve) => {
        const go = () => {
          this.held.splice(this.held.indexOf(go), 1);
          resolve();
        };
        this.held.push(go);
      });
    }
    return targets.map(() => sent());
  }

  release(n = this.held.length): void {
    for (const go of this.held.slice(0, n)) go();
  }

  async close() {}
}

async function seed(appId: string) {
  const db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.iso.schema}` });
  await db.connect();
  try {
    await db.query(`INSERT INTO devices (app_id, id, platform, tags) SELECT $1, 'f' || i, 'ios', '{fan}' FROM generate_series(1, $2::int) i`, [appId, FAN]);
    await db.query(`INSERT INTO devices (app_id, id, platform) SELECT $1, 'tx' || i, 'ios' FROM generate_series(1, 5) i`, [appId]);
    await db.query(`INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT $1, id, 'apns', 'b' || lpad(to_hex(row_number() OVER (ORDER BY id)), 63, '0') FROM devices WHERE app_id = $1`, [appId]);
  } finally {
    await db.end();
  }
}

test('while single pushes flow, the bulk lane sends one batch at a time, and catches up after', async () => {
  const app = await newApp(t);
  const cred = await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, mocks.credentials.apns);
  assert.equal(cred.status, 200, JSON.stringify(cred.body));
  await seed(app.appId);
  const ctx = t.relay.ctx;
  const held = (provider = new HeldProvider());
  const source = { get: async () => held };
  const gate = new BulkGate(ctx.queues.txPressure);
  workers.push(createRouteWorker(ctx), createSendWorker(ctx, 'apns', source, { gate }), createSendWorker(ctx, 'apns', source, { lane: 'tx' }));

  const fan = await app.api('POST', '/v1/push', { to: { tags: { all: ['fan'] } }, notification: { title: 'sale', body: 'everything must go' } });
  assert.equal(fan.status, 202, JSON.stringify(fan.body));

  // 1. No transactional work: the bulk lane runs SEND_CONCURRENCY batches at once.
  await eventually(async () => (held.held.length === CONCURRENCY ? true : undefined), 30_000, 'as many bulk batches in flight as the concurrency');

  // 2. Single pushes, with every bulk batch stuck at the provider: each is sent regardless.
  const singles: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const r = await app.api('POST', '/v1/push', { to: { devices: [`tx${i}`] }, notification: { title: 'code', body: `login code ${i}` } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    singles.push(r.body.id as string);
  }
  await eventually(async () => (held.txSent === 3 ? true : undefined), 30_000, 'the single pushes sent');
  assert.equal(held.held.length, CONCURRENCY, 'the bulk batches are still in flight: the single pushes did not wait for them');

  // 3. While the transactional lane keeps signalling (its workers renew the signal when a job
  //    waited), the released batches finish and the next ones go to the provider one at a time.
  ctx.queues.txPressure.signal();
  const flowing = setInterval(() => ctx.queues.txPressure.signal(), 20);
  try {
    const before = held.othersAtStart.length;
    held.release();
    for (let k = 0; k < 4; k++) {
      // One batch at the provider, and another bulk batch held back at the gate meanwhile: it was
      // refused, not merely slow to arrive.
      await eventually(async () => (held.held.length === 1 && held.othersAtStart.length > before + k && gate.waiting > 0 ? true : undefined), 30_000, `bulk batch ${k + 1} under pressure, another waiting`);
      assert.equal(held.held.length, 1, 'one bulk batch at a time under pressure');
      held.release();
    }
    assert.deepEqual(held.othersAtStart.slice(before), held.othersAtStart.slice(before).map(() => 0), 'each bulk batch under pressure started alone');
  } finally {
    clearInterval(flowing);
  }

  // 4. The signal lapses: the bulk lane is back to its full concurrency.
  await eventually(async () => (held.held.length === CONCURRENCY ? true : undefined), 30_000, 'full bulk concurrency once the pressure ended');

  // 5. Every delivery ends in one state, each attempted once.
  held.free = true;
  held.release();
  const all = [fan.body.id as string, ...singles];
  const counts = await eventually(async () => {
    const r = await ctx.db.selectFrom('deliveries').select(['status']).select((eb) => eb.fn.countAll<string>().as('n')).where('message_id', 'in', all).groupBy('status').execute();
    const byStatus = Object.fromEntries(r.map((x) => [x.status, Number(x.n)]));
    return byStatus.queued ? undefined : byStatus;
  }, 60_000, 'every delivery settled');
  assert.deepEqual(counts, { sent: FAN + 3 });
  assert.equal(held.attempts.size, FAN + 3);
  assert.ok([...held.attempts.values()].every((n) => n === 1), 'no delivery was attempted twice');
});

test('a single push accepted sets no pressure; one that waited in its queue past TX_PRESSURE_AFTER does', async () => {
  // Nothing else serves the tx lane now.
  await Promise.all(workers.splice(0).map((w) => w.close()));
  const ctx = t.relay.ctx;
  const key = `${ctx.queues.prefix}:tx-pressure`;
  await eventually(async () => ((await ctx.queues.connection.exists(key)) === 0 ? true : undefined), 5_000, 'earlier signs lapsed');
  const app = await newApp(t);
  const cred = await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, mocks.credentials.apns);
  assert.equal(cred.status, 200, JSON.stringify(cred.body));
  await seed(app.appId);
  // The latest moment this process knows pressure until (its own signs included): it only grows.
  const known0 = await ctx.queues.txPressure.until();

  const r = await app.api('POST', '/v1/push', { to: { devices: ['tx1'] }, notification: { title: 'code', body: 'login code' } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.equal(await ctx.queues.connection.exists(key), 0, 'accepting a single push signals nothing');
  assert.equal(await ctx.queues.txPressure.until(), known0, 'nor in this process');

  // The job has now waited longer than TX_PRESSURE_AFTER (50 ms) with no worker to pick it.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const picked = Date.now();
  const held = (provider = new HeldProvider());
  workers.push(createSendWorker(ctx, 'apns', { get: async () => held }, { lane: 'tx' }));
  await eventually(async () => (held.txSent === 1 ? true : undefined), 30_000, 'the single push sent');
  assert.ok((await ctx.queues.txPressure.until()) >= picked + 250, 'the late tx job signalled pressure');
});

test('the signal crosses processes through Redis and lapses on its own', async () => {
  const iso = new Isolation();
  const a = new Redis(REDIS_URL);
  const b = new Redis(REDIS_URL);
  try {
    // A sign is only written on a ready connection.
    await Promise.all([a.ping(), b.ping()]);
    // A hold far longer than any polling delay: the other process sees it however loaded the machine.
    const api = new TxPressure(a, iso.prefix, 600_000);
    assert.equal(await new TxPressure(b, iso.prefix).active(), false);
    api.signal();
    await eventually(async () => ((await new TxPressure(b, iso.prefix).active()) ? true : undefined), 5_000, 'the other process sees the signal');
    // It ends on its own: the key carries its TTL.
    const ttl = await b.pttl(`${iso.prefix}:tx-pressure`);
    assert.ok(ttl > 0 && ttl <= 600_000, `TTL ${ttl}`);
    // A short sign replaces it and lapses without anything deleting it.
    new TxPressure(a, iso.prefix, 100).signal();
    const watcher = new TxPressure(b, iso.prefix, 100);
    await eventually(async () => ((await watcher.active()) ? undefined : true), 5_000, 'the signal lapses without a new sign');
    assert.equal(await b.exists(`${iso.prefix}:tx-pressure`), 0);
  } finally {
    a.disconnect();
    b.disconnect();
    await iso.drop();
  }
});

/** A port nothing listens on, or one whose server accepts connections and never answers. */
async function listen(answer: boolean): Promise<{ port: number; server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  if (!answer) await new Promise<void>((r) => server.close(() => r()));
  return { port, server, sockets };
}

/** Resolves with the promise's value, or fails once `ms` passed (generous: only a hang fails). */
async function prompt<T>(p: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not resolve`)), ms)));
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

test('Redis unreachable: no pressure is seen, and the gate admits at once', async () => {
  // The options Relay's shared connection has (retries forever, offline queue on): a closed port,
  // and a server that accepts and never answers (a connection that looks ready but hangs).
  const closed = await listen(false);
  const mute = await listen(true);
  const down = createRedis({ options: { host: '127.0.0.1', port: closed.port, lazyConnect: false } });
  const hung = createRedis({ options: { host: '127.0.0.1', port: mute.port, enableReadyCheck: false, disableClientInfo: true } });
  down.on('error', () => undefined);
  hung.on('error', () => undefined);
  try {
    await eventually(async () => (hung.status === 'ready' ? true : undefined), 5_000, 'the mute server connected');
    for (const [name, redis] of [['closed port', down], ['mute server', hung]] as const) {
      const pressure = new TxPressure(redis, 'relay-t-unreachable');
      pressure.signal(Date.now() - 1_000); // a sign from the past: only what Redis says could hold the lane
      assert.equal(await prompt(pressure.active(), `${name}: active()`), false, `${name}: no pressure seen`);
      const gate = new BulkGate(pressure, 1);
      const first = await prompt(gate.enter(), `${name}: enter()`);
      const second = await prompt(gate.enter(), `${name}: a second enter()`);
      await prompt(gate.step(), `${name}: step()`);
      first();
      second();
    }
    // The signal's writes did not pile up in the offline queue.
    assert.equal((down as unknown as { offlineQueue: { length: number } }).offlineQueue.length, 0);

    // Under pressure a batch between two steps waits for the running one at most its deadline.
    let until = 0;
    const gate = new BulkGate({ until: async () => until }, 1);
    const a = await prompt(gate.enter(), 'enter()');
    const b = await prompt(gate.enter(), 'enter() without pressure');
    until = Date.now() + 600_000;
    await prompt(gate.step(50), 'step() past its deadline');
    a();
    b();
  } finally {
    down.disconnect();
    hung.disconnect();
    for (const s of mute.sockets) s.destroy();
    await new Promise<void>((r) => mute.server.close(() => r()));
  }
});
