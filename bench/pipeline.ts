/**
 * Pipeline benchmark (README: Tests and benchmarks): `POST /v1/push` to N devices until every delivery is `sent`,
 * against the APNs mock in its own process, divided by the rate of a bare node-apn loop on the
 * same mock in the same run. Prints one JSON line.
 *
 *   npm run bench:pipeline -- [--devices 100000] [--chunk 1000] [--rounds 3]
 *
 * Each round runs the bare loop, then Relay on a fresh schema; the median round is reported.
 * Needs Redis and PostgreSQL (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test);
 * uses a fresh schema and queue prefix and removes both afterwards.
 */
import { parseArgs } from 'node:util';
import apn from '@parse/node-apn';
import pg from 'pg';
import { Isolation, PG_URL } from '../test/helpers/harness.js';
import { BUNDLE, apnProvider, startBenchRelay, startMock, stopBenchRelay, token } from './lib/apns-bench.js';
import { cpuDelta, cpuNow, family, peakRssMb } from './lib/process-stats.js';

const { values } = parseArgs({
  options: { devices: { type: 'string', default: '100000' }, chunk: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '3' } },
});
const ROUNDS = Math.max(1, Number(values.rounds));
const N = Number(values.devices);
const CHUNK = Number(values.chunk);

/** The same client Relay uses, in a plain loop: the ceiling the pipeline is measured against. */
async function bareLoop(port: number, mockPid: number): Promise<{ rate: number; cpu: Record<string, number> }> {
  const provider = apnProvider(port);
  const note = new apn.Notification({ alert: { title: 'bench', body: 'bare loop' }, topic: BUNDLE, payload: { relay_id: 'bench' } });
  const cpu0 = cpuNow(mockPid);
  const started = performance.now();
  let ok = 0;
  for (let i = 0; i < N; i += CHUNK) {
    const tokens = Array.from({ length: Math.min(CHUNK, N - i) }, (_, k) => token(i + k));
    const r = await provider.send(note, tokens);
    ok += r.sent.length;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuDelta(cpu0, cpuNow(mockPid));
  provider.shutdown();
  if (ok !== N) throw new Error(`bare loop: only ${ok}/${N} sent`);
  return { rate: N / seconds, cpu };
}

async function relayPipeline(port: number, mockPid: number, iso: Isolation) {
  const relay = await startBenchRelay(iso, port);
  const { child, base, api } = relay;
  try {
    const db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${iso.schema}` });
    await db.connect();
    await db.query(`INSERT INTO devices (app_id, id, platform, tags) SELECT 'bench', 'd' || lpad(i::text, 7, '0'), 'ios', '{bench}' FROM generate_series(0, $1 - 1) i`, [N]);
    await db.query(`INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT 'bench', 'd' || lpad(i::text, 7, '0'), 'apns', 'a' || lpad(to_hex(i), 63, '0') FROM generate_series(0, $1 - 1) i`, [N]);
    // A deployment's audience was analyzed by autovacuum long before a push; this one is seconds
    // old, and the planner would otherwise route it as if the tables were empty.
    await db.query('ANALYZE devices, device_tokens');
    await db.end();

    const cpu0 = cpuNow(mockPid, child.pid);
    const started = performance.now();
    const pushed = await api('POST', '/v1/push', { to: { tags: { all: ['bench'] } }, notification: { title: 'bench', body: 'pipeline' } });
    const acceptMs = performance.now() - started;
    if (pushed.status !== 202) throw new Error(`push: ${JSON.stringify(pushed.body)}`);
    // Polls the cheap question (is anything still queued?) often, and the full counts once.
    for (;;) {
      const q = await api('GET', `/v1/messages/${pushed.body.id}/deliveries?status=queued&limit=1`);
      if (q.body.items.length === 0) {
        const m = await api('GET', `/v1/messages/${pushed.body.id}`);
        if (m.body.state === 'done') {
          if (m.body.counts.sent !== N) throw new Error(`pipeline ended with ${JSON.stringify(m.body.counts)}`);
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = cpuDelta(cpu0, cpuNow(mockPid, child.pid));
    if (process.env.BENCH_METRICS) {
      const text = await (await fetch(`${base}/metrics`)).text();
      console.error(text.split('\n').filter((l) => /eventloop_lag|gc_duration_seconds_sum|relay_provider_batch_seconds_(sum|count)/.test(l)).join('\n'));
    }
    const rss = family(child.pid!).map(peakRssMb);
    return { rate: N / seconds, cpu, peakRssMb: rss.reduce((a, b) => a + b, 0), processes: rss.length, acceptMs: Math.round(acceptMs) };
  } finally {
    await stopBenchRelay(relay);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Rounds alternate the bare loop and Relay, and the median ratio is reported: on a shared 2-core
// VM one run swings by ±10 %, more than the differences worth measuring.
const mock = await startMock();
const rounds: { bare: Awaited<ReturnType<typeof bareLoop>>; relay: Awaited<ReturnType<typeof relayPipeline>> }[] = [];
try {
  for (let r = 0; r < ROUNDS; r++) {
    const iso = new Isolation();
    try {
      const bare = await bareLoop(mock.port, mock.child.pid!);
      rounds.push({ bare, relay: await relayPipeline(mock.port, mock.child.pid!, iso) });
    } finally {
      await iso.drop();
    }
  }
  const ratios = rounds.map((x) => Number((x.relay.rate / x.bare.rate).toFixed(3)));
  const mid = rounds[ratios.indexOf(median(ratios))]!;
  console.log(
    JSON.stringify({
      bench: 'pipeline',
      provider: 'apns',
      devices: N,
      rounds: ROUNDS,
      bareSendsPerSec: Math.round(mid.bare.rate),
      relaySendsPerSec: Math.round(mid.relay.rate),
      ratio: median(ratios),
      ratios,
      goal: 0.8,
      relayPeakRssMb: Math.max(...rounds.map((x) => x.relay.peakRssMb)),
      relayProcesses: mid.relay.processes,
      pushAcceptMs: mid.relay.acceptMs,
      cpuSecondsBare: mid.bare.cpu,
      cpuSecondsRelay: mid.relay.cpu,
    }),
  );
} finally {
  mock.child.kill('SIGTERM');
}
