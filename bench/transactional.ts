/**
 * Transactional benchmark (issue 9; README: Tests and benchmarks): one push per event, as a backend sends them.
 * Relay runs as `npm start` would (every role, worker processes forked, PostgreSQL), the APNs
 * mock in its own process. Prints one JSON line with, in the same run:
 *
 * - `bare`: a node-apn loop, one token per call, `--inflight` calls in flight, on the same mock:
 *   the ceiling the end-to-end rate is divided by;
 * - `register`: `PUT /v1/devices/:id` for `--devices` iOS devices, `--inflight` in flight;
 * - `endToEnd`: one `POST /v1/push` per device (`to.devices`), `--inflight` in flight, until every
 *   delivery is `sent`: accept rate and latency, end-to-end rate, accept → sent latency;
 * - `paced`: `--rate` pushes a second for `--seconds`, accept → sent latency percentiles;
 * - `isolation`: the same latency at `--iso-rate`, quiet, then while a `--fanout`-device fan-out
 *   is being sent.
 *
 *   npm run bench:transactional -- [--devices 10000] [--inflight 64] [--rate 1000] [--seconds 5]
 *                                  [--iso-rate 200] [--fanout 100000] [--only isolation]
 *
 * `--only isolation` registers the devices and measures only the isolation part. The isolation
 * part also breaks each single push's accept → sent down by stage, from the database clock and its
 * transactional send job's BullMQ timestamps (added, processed, finished), and times the fan-out.
 *
 * Accept → sent is `deliveries.sent_at − messages.created_at`, both PostgreSQL clock readings:
 * the time from storing the request to writing the provider's answer.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import apn from '@parse/node-apn';
import pg from 'pg';
import { Queue } from 'bullmq';
import { Isolation, PG_URL } from '../test/helpers/harness.js';
import { BUNDLE, apnProvider, startBenchRelay, startMock, stopBenchRelay, token } from './lib/apns-bench.js';
import { cpuDelta, cpuNow } from './lib/process-stats.js';
import { txQueueName, type SendJob } from '../src/queues.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    inflight: { type: 'string', default: '64' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    'iso-rate': { type: 'string', default: '200' },
    fanout: { type: 'string', default: '100000' },
    only: { type: 'string' },
  },
});
const N = Number(values.devices);
const INFLIGHT = Number(values.inflight);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const ISO_RATE = Number(values['iso-rate']);
const FANOUT = Number(values.fanout);
const ONLY_ISOLATION = values.only === 'isolation';

const pct = (sorted: number[], p: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN).toFixed(1));
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: pct(s, 100) };
};

/** `calls` calls of `fn`, `inflight` at a time; returns the rate and each call's latency. */
async function closedLoop(calls: number, inflight: number, fn: (i: number) => Promise<void>) {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < calls) {
        const i = next++;
        const t0 = performance.now();
        await fn(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { rate: Math.round(calls / ((performance.now() - started) / 1000)), ...summary(latencies) };
}

/** `rate` calls a second for `seconds`, whatever the answers take (an open loop). */
async function openLoop(rate: number, seconds: number, fn: (i: number) => Promise<void>) {
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  const started = performance.now();
  const calls: Promise<void>[] = [];
  for (let i = 0; i < total; ) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    for (; i < due; i++) {
      const t0 = performance.now();
      calls.push(fn(i).then(() => void latencies.push(performance.now() - t0)));
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(calls);
  return summary(latencies);
}

/** The baseline: node-apn, one token per `send`, `inflight` sends in flight. */
async function bareLoop(port: number) {
  const provider = apnProvider(port);
  const note = new apn.Notification({ alert: { title: 'bench', body: 'bare loop' }, topic: BUNDLE, payload: { relay_id: 'bench' } });
  let ok = 0;
  let failure: unknown;
  const r = await closedLoop(N, INFLIGHT, async (i) => {
    const res = await provider.send(note, token(i));
    ok += res.sent.length;
    failure ??= res.failed[0];
  });
  provider.shutdown();
  if (ok !== N) throw new Error(`bare loop: only ${ok}/${N} sent (${JSON.stringify(failure)})`);
  return r;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(base: string, key: string, method: string, path: string, body: unknown, expect: number): Promise<string> {
  const text = JSON.stringify(body);
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path, method, agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'content-length': Buffer.byteLength(text) } },
      (res) => {
        let out = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (out += c));
        res.on('end', () => (res.statusCode === expect ? resolve(out) : reject(new Error(`${method} ${path}: ${res.statusCode} ${out}`))));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const device = (i: number) => `t${String(i).padStart(7, '0')}`;
const pushBody = (i: number) => ({ to: { devices: [device(i % N)] }, notification: { title: 'Your order shipped', body: `order ${i}` }, data: { order: String(i) } });

/** Waits until no delivery of these messages is queued; then their accept → sent latencies. */
async function settled(db: pg.Client, ids: string[], timeoutMs = 600_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await db.query<{ open: string; sent: string; other: string; last: Date | null }>(
      `SELECT count(*) FILTER (WHERE status = 'queued') AS open, count(*) FILTER (WHERE status = 'sent') AS sent,
              count(*) FILTER (WHERE status NOT IN ('queued', 'sent')) AS other, max(sent_at) AS last
       FROM deliveries WHERE message_id = ANY($1::text[])`,
      [ids],
    );
    const row = r.rows[0]!;
    if (Number(row.open) === 0 && Number(row.sent) + Number(row.other) >= ids.length) {
      const lat = await db.query<{ ms: number }>(
        `SELECT extract(epoch FROM d.sent_at - m.created_at) * 1000 AS ms FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.message_id = ANY($1::text[]) AND d.status = 'sent'`,
        [ids],
      );
      return { sent: Number(row.sent), other: Number(row.other), last: row.last!, latency: summary(lat.rows.map((x) => Number(x.ms))) };
    }
    if (Date.now() > until) throw new Error(`not settled: ${JSON.stringify(row)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/**
 * Where single pushes' accept → sent went, per stage (p50/p99 of each): stored → queued (the
 * insert's commit to BullMQ's add), queued → picked (the tx lane's queue wait), picked → sent
 * (the worker's read, the provider, up to the outcome statement's now()), sent → done (the outcome
 * statement's commit and BullMQ's completion). Clocks: PostgreSQL's and the processes' own, one
 * machine.
 */
async function stages(db: pg.Client, prefix: string, ids: string[]) {
  const q = new Queue(txQueueName('apns'), { connection: { host: '127.0.0.1', port: 6379 }, prefix });
  try {
    const rows = await db.query<{ message_id: string; created: number; sent: number }>(
      `SELECT d.message_id, extract(epoch FROM m.created_at) * 1000 AS created, extract(epoch FROM d.sent_at) * 1000 AS sent
       FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.message_id = ANY($1::text[]) AND d.status = 'sent'`,
      [ids],
    );
    const jobs = new Map<string, { timestamp: number; processedOn?: number | undefined; finishedOn?: number | undefined }>();
    for (const j of await q.getJobs(['completed'], 0, -1)) for (const p of (j.data as SendJob).parts ?? []) jobs.set(p.messageId, j);
    const out = { storedToQueued: [] as number[], queueWait: [] as number[], pickedToSent: [] as number[], sentToDone: [] as number[] };
    for (const r of rows.rows) {
      const j = jobs.get(r.message_id);
      if (!j?.processedOn || !j.finishedOn) continue;
      out.storedToQueued.push(j.timestamp - Number(r.created));
      out.queueWait.push(j.processedOn - j.timestamp);
      out.pickedToSent.push(Number(r.sent) - j.processedOn);
      out.sentToDone.push(j.finishedOn - Number(r.sent));
    }
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, summary(v)]));
  } finally {
    await q.close();
  }
}

const mock = await startMock();
const iso = new Isolation();
const result: Record<string, unknown> = { bench: 'transactional', provider: 'apns', devices: N, inflight: INFLIGHT };
try {
  const bare = await bareLoop(mock.port);
  result.bare = bare;
  result.load = (await import('node:os')).loadavg().map((x) => Number(x.toFixed(1)));
  const relay = await startBenchRelay(iso, mock.port);
  const key = relay.key;
  const db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${iso.schema}` });
  await db.connect();
  try {
    result.register = await closedLoop(N, INFLIGHT, async (i) => {
      await request(relay.base, key, 'PUT', `/v1/devices/${device(i)}`, { platform: 'ios', tokens: { apns: token(i) }, tags: ['tx'] }, 200);
    });
    await db.query('ANALYZE devices, device_tokens');

    const push = async (ids: string[], i: number) => {
      ids.push((JSON.parse(await request(relay.base, key, 'POST', '/v1/push', pushBody(i), 202)) as { id: string }).id);
    };

    if (!ONLY_ISOLATION) {
    // End to end: as fast as 64 callers can push, until every delivery is sent.
    const e2eIds: string[] = [];
    const cpu0 = cpuNow(mock.child.pid!, relay.child.pid);
    const startedAt = new Date();
    const accept = await closedLoop(N, INFLIGHT, (i) => push(e2eIds, i));
    const e2e = await settled(db, e2eIds);
    const seconds = (e2e.last.getTime() - startedAt.getTime()) / 1000;
    const cpu = cpuDelta(cpu0, cpuNow(mock.child.pid!, relay.child.pid));
    result.accept = accept;
    result.endToEnd = { rate: Math.round(e2e.sent / seconds), notSent: e2e.other, acceptToSentMs: e2e.latency, cpuSeconds: cpu };
    result.ratio = Number((e2e.sent / seconds / bare.rate).toFixed(3));

    // Latency at a steady rate the pipeline should carry.
    const pacedIds: string[] = [];
    const pacedAccept = await openLoop(RATE, SECONDS, (i) => push(pacedIds, i));
    result.paced = { rate: RATE, seconds: SECONDS, acceptMs: pacedAccept, acceptToSentMs: (await settled(db, pacedIds)).latency };
    }

    // Isolation: the same single pushes, quiet and then while a big fan-out is being sent.
    // Alone, the isolation part first warms the workers (provider connections, plans) up.
    if (ONLY_ISOLATION) {
      const warmIds: string[] = [];
      await openLoop(ISO_RATE, 1, (i) => push(warmIds, i));
      await settled(db, warmIds);
    }
    const quietIds: string[] = [];
    const quietAccept = await openLoop(ISO_RATE, SECONDS, (i) => push(quietIds, i));
    const quiet = (await settled(db, quietIds)).latency;
    await db.query(`INSERT INTO devices (app_id, id, platform, tags) SELECT 'bench', 'f' || lpad(i::text, 7, '0'), 'ios', '{fan}' FROM generate_series(0, $1 - 1) i`, [FANOUT]);
    await db.query(`INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT 'bench', 'f' || lpad(i::text, 7, '0'), 'apns', 'b' || lpad(to_hex(i), 63, '0') FROM generate_series(0, $1 - 1) i`, [FANOUT]);
    await db.query('ANALYZE devices, device_tokens');
    const fanStarted = Date.now();
    const fan = (JSON.parse(await request(relay.base, key, 'POST', '/v1/push', { to: { tags: { all: ['fan'] } }, notification: { title: 'campaign', body: 'sale' } }, 202)) as { id: string }).id;
    // Under way: the router has queued sends and the first are out.
    for (;;) {
      const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM deliveries WHERE message_id = $1 AND status = 'sent'`, [fan]);
      if (Number(r.rows[0]!.n) > 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const busyIds: string[] = [];
    const busyAccept = await openLoop(ISO_RATE, SECONDS, (i) => push(busyIds, i));
    const busy = (await settled(db, busyIds)).latency;
    const fanLeft = await db.query<{ n: string }>(`SELECT count(*) AS n FROM deliveries WHERE message_id = $1 AND status = 'sent'`, [fan]);
    const fanSentWhenDone = Number(fanLeft.rows[0]!.n);
    const fanDone = await settled(db, [fan]);
    const prefix = relay.env.QUEUE_PREFIX!;
    result.isolation = {
      rate: ISO_RATE,
      fanout: FANOUT,
      quietAcceptMs: quietAccept,
      quietAcceptToSentMs: quiet,
      quietStagesMs: await stages(db, prefix, quietIds),
      duringFanoutAcceptMs: busyAccept,
      duringFanoutAcceptToSentMs: busy,
      duringFanoutStagesMs: await stages(db, prefix, busyIds),
      fanoutSentWhenDone: fanSentWhenDone,
      fanoutSeconds: Number(((fanDone.last.getTime() - fanStarted) / 1000).toFixed(1)),
      p99Ratio: Number((busy.p99 / quiet.p99).toFixed(2)),
    };
    result.goals = { ratio: 0.8, acceptRps: 5000, acceptP99Ms: 50, registerRps: 3000, registerP99Ms: 50, pacedP50Ms: 20, pacedP99Ms: 100, isolationP99Ratio: 2 };
    console.log(JSON.stringify(result));
  } finally {
    await db.end();
    await stopBenchRelay(relay);
  }
} finally {
  agent.destroy();
  mock.child.kill('SIGTERM');
  await iso.drop();
}
