// One concept: the vendor pipeline benchmark (one runner for all six vendors).
/**
 * Vendor pipeline benchmark (README: Tests and benchmarks; "pipeline" applied to each vendor channel): for each vendor,
 * `POST /v1/push` to N Android devices of that brand until every delivery is `sent`, against the
 * vendor's mock in its own process, divided by the rate of a bare loop of the same HTTP calls on
 * the same mock in the same run. Prints one JSON line:
 *
 *   {"bench":"vendors","devices":N,"results":{"huawei":{"bareTokensPerSec","relayTokensPerSec","ratio",…},…},"goal":0.8,…}
 *
 *   tsx bench/vendors.ts [--vendors huawei,honor,xiaomi,oppo,vivo,meizu] [--devices 20000]
 *                        [--bare-concurrency N] [--qps 1000000] [--timeout 600] [--rounds 3]
 *
 * Each vendor runs `--rounds` alternating rounds (bare loop, then Relay) and reports the median.
 * `audienceFloor` is what reading the N tokens out of PostgreSQL costs (one plain query, PostgreSQL
 * plus client parsing) and `trackingFloor` what PostgreSQL alone spends to give every token a
 * durable fate (a bulk INSERT and UPDATE, no client). `ceilingRatio` is the best ratio those floors
 * leave any pipeline that reads its audience from PostgreSQL and records per-token state there: the
 * bare loop's CPU plus both floors', spread perfectly over every core.
 *
 * Per vendor:
 * - The mock runs in its own process (bench/vendor-mock-server.ts, request recording off).
 * - Bare loop (in this process): the provider module's own `create()` + `send()`, called with
 *   chunks of exactly the vendor's batch size (Huawei / OPPO / vivo 1000, Honor / Xiaomi / Meizu
 *   100), with as many chunks in flight as the provider allows one credential (its internal
 *   limiter: 8, Meizu 4) — i.e. the provider client at its own concurrency, with no queue, database
 *   or routing around it. `--bare-concurrency 1` makes it a strictly sequential loop instead.
 * - Relay: `node --import tsx src/main.ts` as a separate process with default settings
 *   (WORKER_PROCESSES=auto, SEND_BATCH_SIZE 500, …; any `BENCH_RELAY_<VAR>` env is passed on as
 *   `<VAR>`) on a fresh PostgreSQL schema and BullMQ prefix; app, key and credential through the
 *   REST API, devices (`platform android`, `brand <vendor>`, one `<vendor>` token) by SQL, then
 *   `POST /v1/push` to all of them, polled until the message is done.
 * - The credential carries `qps` = `--qps` (default 1,000,000) in both runs: Relay otherwise
 *   throttles each credential to the vendor's published rate (providers' `qps()`, e.g. Meizu
 *   200/s, Xiaomi 500/s), which would measure the limiter instead of the pipeline. The output
 *   says so (`qpsOverride`).
 * A vendor whose run fails gets `{"error": "…"}` in its slot; the others still run.
 *
 * Needs Redis and PostgreSQL (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test).
 * TLS to the mocks uses the test CA through NODE_EXTRA_CA_CERTS, which Node reads only at start:
 * when it is not set to the test CA, the benchmark re-runs itself with it set.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { HONOR_MAX_TOKENS } from '../providers/honor.js';
import { HUAWEI_MAX_TOKENS } from '../providers/huawei.js';
import { MEIZU_BATCH_MAX } from '../providers/meizu.js';
import { OPPO_BATCH_MAX } from '../providers/oppo.js';
import { providerModule } from '../providers/registry.js';
import { VENDOR_CHANNELS, type VendorChannel } from '../providers/channels.js';
import type { PushContent, ProviderContext } from '../providers/types.js';
import { VIVO_BATCH_MAX } from '../providers/vivo.js';
import { XIAOMI_MAX_REGIDS } from '../providers/xiaomi.js';
import { migrate, openDatabase } from '../src/db/database.js';
import { createLogger } from '../src/logger.js';
import { Isolation, PG_URL, client } from '../test/helpers/harness.js';
import { testPki } from '../test/mocks/tls.js';
import { cpuDelta, cpuNow, family, postgresCpuSeconds } from './lib/process-stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

/** Tokens per request the provider sends (its exported batch limit). */
const BATCH: Record<VendorChannel, number> = {
  huawei: HUAWEI_MAX_TOKENS,
  honor: HONOR_MAX_TOKENS,
  xiaomi: XIAOMI_MAX_REGIDS,
  oppo: OPPO_BATCH_MAX,
  vivo: VIVO_BATCH_MAX,
  meizu: MEIZU_BATCH_MAX,
};

/** Requests one provider instance keeps in flight per credential (the unexported `CONCURRENCY` in providers/<vendor>.ts). */
const PROVIDER_CONCURRENCY: Record<VendorChannel, number> = { huawei: 8, honor: 8, xiaomi: 8, oppo: 8, vivo: 8, meizu: 4 };

/** Relay's environment pointing the vendor at its mock. */
function endpointEnv(vendor: VendorChannel, url: string): Record<string, string> {
  switch (vendor) {
    case 'huawei':
      return { HUAWEI_ENDPOINT: url, HUAWEI_OAUTH_ENDPOINT: url };
    case 'honor':
      return { HONOR_ENDPOINT: url, HONOR_OAUTH_ENDPOINT: url };
    case 'xiaomi':
      return { XIAOMI_ENDPOINT: url };
    case 'oppo':
      return { OPPO_ENDPOINT: url };
    case 'vivo':
      return { VIVO_ENDPOINT: url };
    case 'meizu':
      return { MEIZU_ENDPOINT: url };
  }
}

const pki = testPki();

// ---------------------------------------------------------------------------------------------
// NODE_EXTRA_CA_CERTS: Node reads it once at start, so set it and run again when it is missing.
// ---------------------------------------------------------------------------------------------

async function reexecWithTestCa(): Promise<never> {
  let caFile = pki.caPath;
  const existing = process.env.NODE_EXTRA_CA_CERTS;
  if (existing && existing !== pki.caPath) {
    // Keep whatever CAs the caller trusts, plus the test CA.
    caFile = join(tmpdir(), `relay-bench-ca-${process.pid}.pem`);
    let theirs = '';
    try {
      theirs = readFileSync(existing, 'utf8');
    } catch {
      /* unreadable: Node would ignore it too */
    }
    writeFileSync(caFile, `${theirs}\n${pki.caPem}`);
  }
  const child = spawn(process.execPath, ['--import', 'tsx', SELF, ...process.argv.slice(2)], {
    cwd: ROOT,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile, RELAY_BENCH_CA_SET: '1' },
    stdio: 'inherit',
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (caFile !== pki.caPath) rmSync(caFile, { force: true });
  process.exit(code ?? (signal ? 128 : 1));
}

if (process.env.NODE_EXTRA_CA_CERTS !== pki.caPath && process.env.RELAY_BENCH_CA_SET !== '1') await reexecWithTestCa();

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

const { values } = parseArgs({
  options: {
    vendors: { type: 'string', default: VENDOR_CHANNELS.join(',') },
    devices: { type: 'string', default: '20000' },
    'bare-concurrency': { type: 'string' },
    qps: { type: 'string', default: '1000000' },
    timeout: { type: 'string', default: '600' },
    rounds: { type: 'string', default: '3' },
  },
});
const ROUNDS = Math.max(1, Number(values.rounds));
const N = Number(values.devices);
const QPS = Number(values.qps);
const TIMEOUT_MS = Number(values.timeout) * 1000;
const BARE_CONCURRENCY = values['bare-concurrency'] !== undefined ? Number(values['bare-concurrency']) : undefined;
const VENDORS = values.vendors.split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);
if (!Number.isInteger(N) || N < 1) throw new Error('--devices must be a positive integer');
if (!Number.isInteger(QPS) || QPS < 1) throw new Error('--qps must be a positive integer');
if (BARE_CONCURRENCY !== undefined && (!Number.isInteger(BARE_CONCURRENCY) || BARE_CONCURRENCY < 1)) throw new Error('--bare-concurrency must be a positive integer');
for (const v of VENDORS) if (!(VENDOR_CHANNELS as readonly string[]).includes(v)) throw new Error(`unknown vendor ${v} (expected ${VENDOR_CHANNELS.join(', ')})`);

const childEnv = { ...process.env, NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS ?? pki.caPath };
/** The same tokens in both runs; a leading `t` keeps them clear of the mocks' scripted prefixes (`invalid-`, `busy-`, …). */
const token = (i: number) => 't' + i.toString(16).padStart(63, '0');
const TOKEN_SQL = `'t' || lpad(to_hex(i), 63, '0')`;
const TITLE = 'bench';
const BODY = 'vendor pipeline';

// ---------------------------------------------------------------------------------------------
// Processes: what is alive is stopped on exit, whatever happens
// ---------------------------------------------------------------------------------------------

const live = new Set<ChildProcess>();
/** Set by SIGINT / SIGTERM: cleanup is under way, nothing new may start. */
let interrupted = false;
/** Isolations in use, each with its drop once started: an interrupt and the run's own `finally` share it. */
const isolations = new Map<Isolation, Promise<void> | undefined>();

function drop(iso: Isolation): Promise<void> {
  let p = isolations.get(iso);
  if (!p) {
    p = (async () => {
      // Retried: on an interrupt the schema may still be in use (e.g. by the device insert), and
      // DROP SCHEMA … CASCADE can lose a deadlock to it.
      for (let attempt = 1; ; attempt++) {
        try {
          return await iso.drop();
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
    })();
    isolations.set(iso, p);
  }
  return p;
}

function track(child: ChildProcess): ChildProcess {
  if (interrupted) child.kill('SIGTERM');
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL for the child and the processes it forked if it has not exited after `graceMs`. */
async function stop(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  const pids = child.pid ? family(child.pid) : [];
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  // `on`, not `once`: a Ctrl-C reaches this process both from the terminal and from the re-exec parent.
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    // Children first (a Relay still running would hold locks and write keys while its schema and
    // prefix are dropped), then what they used.
    void Promise.allSettled([...live].map((c) => stop(c, 10_000)))
      .then(() => Promise.allSettled([...isolations.keys()].map(drop)))
      .then((dropped) => {
        for (const d of dropped) if (d.status === 'rejected') console.error(`cleanup: ${(d.reason as Error).message}`);
      })
      .finally(() => process.exit(130));
  });
}

/** Lines of a child's stdout, one at a time. */
class Lines {
  private readonly rl: Interface;
  private readonly buffered: string[] = [];
  private readonly waiting: Array<(line: string | undefined) => void> = [];
  private closed = false;
  private sink?: (line: string) => void;

  constructor(child: ChildProcess) {
    this.rl = createInterface({ input: child.stdout! });
    this.rl.on('line', (l) => {
      if (this.sink) return this.sink(l);
      const w = this.waiting.shift();
      if (w) w(l);
      else this.buffered.push(l);
    });
    this.rl.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(undefined);
    });
  }

  /** From now on every line goes to `sink` (the stream keeps flowing, so the child never blocks on a full pipe). */
  drain(sink: (line: string) => void): void {
    this.sink = sink;
    for (const l of this.buffered.splice(0)) sink(l);
  }

  /** The next line, or undefined when the stream ended. */
  next(timeoutMs: number, what: string): Promise<string | undefined> {
    const b = this.buffered.shift();
    if (b !== undefined) return Promise.resolve(b);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(done);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const done = (line: string | undefined) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiting.push(done);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (as in bench/pipeline.ts)
// ---------------------------------------------------------------------------------------------


// ---------------------------------------------------------------------------------------------
// The mock
// ---------------------------------------------------------------------------------------------

interface MockProc {
  child: ChildProcess;
  url: string;
  credential: Record<string, string>;
  /** HTTP requests the mock has served so far. */
  requests(): Promise<number>;
}

async function startMock(vendor: VendorChannel): Promise<MockProc> {
  const child = track(
    spawn(process.execPath, ['--import', 'tsx', 'bench/vendor-mock-server.ts', '--vendor', vendor, '--port', '0', '--exit-on-stdin-close'], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const lines = new Lines(child);
  const first = await lines.next(60_000, `the ${vendor} mock to start`);
  if (first === undefined) throw new Error(`the ${vendor} mock exited before it listened`);
  const info = JSON.parse(first) as { url: string; credential: Record<string, string> };
  return {
    child,
    url: info.url,
    credential: info.credential,
    async requests() {
      child.stdin!.write('stats\n');
      const line = await lines.next(10_000, `${vendor} mock stats`);
      if (line === undefined) throw new Error(`the ${vendor} mock exited`);
      return (JSON.parse(line) as { requests: number }).requests;
    },
  };
}

/** The credential body both runs use: the mock's, with the QPS override. */
function credentialBody(mock: MockProc): Record<string, unknown> {
  return { ...mock.credential, qps: QPS };
}

// ---------------------------------------------------------------------------------------------
// Bare loop
// ---------------------------------------------------------------------------------------------

interface Phase {
  rate: number;
  seconds: number;
  requests: number;
  cpu: Record<string, number>;
}

/** The provider client on its own: `create()` + `send()` in chunks of the vendor's batch size. */
async function bareLoop(vendor: VendorChannel, mock: MockProc): Promise<Phase & { concurrency: number }> {
  const mod = providerModule(vendor)!;
  const body = credentialBody(mock);
  // Relay's API fills `callbackUrl` with the app's receipt URL for vendors whose schema has one
  // (it then rides along in every message): give the bare loop one of the same shape.
  const shape = (mod.credentialSchema as unknown as { shape?: Record<string, unknown> }).shape;
  if (shape && 'callbackUrl' in shape) body.callbackUrl = `http://127.0.0.1:40000/v1/receipts/${vendor}/bench?secret=${'s'.repeat(24)}`;
  const cred = mod.credentialSchema.parse(body);
  const ctx: ProviderContext = {
    endpoints: {
      fcm: mock.url, huawei: mock.url, huaweiOauth: mock.url, xiaomi: mock.url, oppo: mock.url, vivo: mock.url,
      honor: mock.url, honorOauth: mock.url, meizu: mock.url,
    },
    tls: { ca: pki.caPem },
    tuning: { apnsMaxStreams: 500, apnsConnections: 1, fcmConcurrency: 64 },
    logger: createLogger('silent'),
  };
  const provider = mod.create(cred, ctx);
  // What Relay builds from `{notification: {title, body}}` with default options (src/core/content.ts).
  const ttl = 2_419_200;
  const content: PushContent = {
    messageId: `msg_bench_${vendor}_${Date.now().toString(36)}`,
    notification: { title: TITLE, body: BODY },
    options: { ttl, priority: 'high' },
    expiresAt: Date.now() + ttl * 1000,
  };
  const size = BATCH[vendor];
  const concurrency = BARE_CONCURRENCY ?? PROVIDER_CONCURRENCY[vendor];
  const chunks = Math.ceil(N / size);
  let nextChunk = 0;
  let sent = 0;
  const failures = new Map<string, number>();

  const requests0 = await mock.requests();
  const cpu0 = cpuNow(mock.child.pid!);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, chunks) }, async () => {
      for (let c = nextChunk++; c < chunks; c = nextChunk++) {
        const from = c * size;
        const targets = Array.from({ length: Math.min(size, N - from) }, (_, k) => ({ deliveryId: String(from + k), token: token(from + k) }));
        for (const o of await provider.send(content, targets)) {
          if (o.kind === 'sent') sent++;
          else {
            const key = `${o.kind}:${o.reason.code}`;
            failures.set(key, (failures.get(key) ?? 0) + 1);
          }
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuDelta(cpu0, cpuNow(mock.child.pid!));
  const requests = (await mock.requests()) - requests0;
  await provider.close();
  if (sent !== N) throw new Error(`bare loop: only ${sent}/${N} sent (${JSON.stringify(Object.fromEntries(failures))})`);
  return { rate: N / seconds, seconds, requests, cpu, concurrency };
}

// ---------------------------------------------------------------------------------------------
// Relay
// ---------------------------------------------------------------------------------------------

async function relayPipeline(vendor: VendorChannel, mock: MockProc): Promise<Phase & { processes: number; acceptMs: number }> {
  const iso = new Isolation();
  isolations.set(iso, undefined);
  let child: ChildProcess | undefined;
  try {
    const env = iso.env({
      ...endpointEnv(vendor, mock.url),
      LOG_LEVEL: 'info',
      WORKER_PROCESSES: 'auto',
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_RELAY_')).map(([k, v]) => [k.slice('BENCH_RELAY_'.length), v!])),
    });
    // RELAY_CPU_PROF=<dir>: a V8 CPU profile of Relay and of every worker process it forks.
    const profile = process.env.RELAY_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.RELAY_CPU_PROF] : [];
    child = track(
      spawn(process.execPath, [...profile, '--import', 'tsx', 'src/main.ts'], {
        cwd: ROOT,
        env: { ...childEnv, ...env, PORT: '0' },
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    // Ready when the API has its port and every forked worker process has started.
    const lines = new Lines(child);
    let apiPort = 0;
    let ready = 0;
    let workers = 0;
    const readyBy = Date.now() + 120_000;
    while (!(apiPort && ready >= 1 + workers)) {
      const line = await lines.next(Math.max(1, readyBy - Date.now()), 'Relay to start');
      if (line === undefined) {
        if (child.exitCode === null && child.signalCode === null) await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5_000))]);
        throw new Error(`Relay exited during start-up (code ${child.exitCode}, signal ${child.signalCode}; its stderr is above)`);
      }
      if (line.includes('relay started')) {
        ready++;
        const m = /"port":(\d+)/.exec(line);
        if (m && Number(m[1]) > 0 && !apiPort) apiPort = Number(m[1]);
      }
      const w = /"workerProcesses":(\d+)/.exec(line);
      if (w) workers = Number(w[1]);
    }
    // Keep draining Relay's stdout, or it blocks on a full pipe.
    lines.drain((l) => {
      if (process.env.BENCH_LOG) console.error(l);
    });

    const base = `http://127.0.0.1:${apiPort}`;
    const op = client(base, env.ADMIN_TOKEN);
    const app = await op('POST', '/v1/apps', { id: 'bench', name: 'bench' });
    if (app.status !== 201) throw new Error(`create app: ${app.status} ${JSON.stringify(app.body)}`);
    const key = await op('POST', '/v1/apps/bench/keys', { scopes: ['admin'] });
    if (key.status !== 201) throw new Error(`create key: ${key.status} ${JSON.stringify(key.body)}`);
    const api = client(base, key.body.key as string);
    const cred = await api('PUT', `/v1/apps/bench/credentials/${vendor}`, credentialBody(mock));
    if (cred.status !== 200) throw new Error(`credentials: ${cred.status} ${JSON.stringify(cred.body)}`);

    const db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${iso.schema}` });
    await db.connect();
    try {
      await db.query(
        `INSERT INTO devices (app_id, id, platform, brand, tags) SELECT 'bench', 'd' || lpad(i::text, 7, '0'), 'android', $2, '{bench}' FROM generate_series(0, $1 - 1) i`,
        [N, vendor],
      );
      await db.query(
        `INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT 'bench', 'd' || lpad(i::text, 7, '0'), $2, ${TOKEN_SQL} FROM generate_series(0, $1 - 1) i`,
        [N, vendor],
      );
      // A deployment's audience was analyzed by autovacuum long before a push; this one is seconds
      // old, and the planner would otherwise route it as if the tables were empty.
      await db.query('ANALYZE devices, device_tokens');
    } finally {
      await db.end();
    }

    const requests0 = await mock.requests();
    const cpu0 = cpuNow(mock.child.pid!, child.pid);
    const started = performance.now();
    const pushed = await api('POST', '/v1/push', { to: { tags: { all: ['bench'] } }, notification: { title: TITLE, body: BODY } });
    const acceptMs = performance.now() - started;
    if (pushed.status !== 202) throw new Error(`push: ${pushed.status} ${JSON.stringify(pushed.body)}`);
    const deadline = Date.now() + TIMEOUT_MS;
    // Polls the cheap question (is anything still queued?) often, and the full counts once.
    for (;;) {
      const q = await api('GET', `/v1/messages/${pushed.body.id}/deliveries?status=queued&limit=1`);
      if (q.status === 200 && q.body.items.length === 0) {
        const m = await api('GET', `/v1/messages/${pushed.body.id}`);
        if (m.body.state === 'done') {
          if (m.body.counts.sent !== N) throw new Error(`Relay ended with ${JSON.stringify(m.body.counts)} (byChannel ${JSON.stringify(m.body.byChannel)})`);
          break;
        }
      }
      if (Date.now() > deadline) {
        const m = await api('GET', `/v1/messages/${pushed.body.id}`);
        throw new Error(`Relay did not finish within ${TIMEOUT_MS / 1000} s: ${JSON.stringify(m.body.counts ?? m.body)}`);
      }
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('Relay exited during the run');
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = cpuDelta(cpu0, cpuNow(mock.child.pid!, child.pid));
    const processes = family(child.pid!).length;
    const requests = (await mock.requests()) - requests0;
    return { rate: N / seconds, seconds, requests, cpu, processes, acceptMs: Math.round(acceptMs) };
  } finally {
    if (child) await stop(child);
    await drop(iso).catch((err: unknown) => console.error(`dropping ${iso.schema} / ${iso.prefix}: ${(err as Error).message}`));
    isolations.delete(iso);
  }
}

// ---------------------------------------------------------------------------------------------
// Tracking floor
// ---------------------------------------------------------------------------------------------

/**
 * What any pipeline that keeps a durable fate per token must spend beyond the bare loop, with no
 * client work of its own, on Relay's schema (its indexes, HOT-friendly fill factor):
 * - `audience`: reading the N tokens it sends to out of PostgreSQL in one plain query, rows as
 *   arrays (the bare loop has them in memory): PostgreSQL's CPU plus this process's parsing;
 * - `tracking`: one bulk INSERT of N queued deliveries and one UPDATE of all of them to `sent`:
 *   PostgreSQL's CPU.
 */
async function floors(vendor: VendorChannel): Promise<{ audience: Floor; tracking: Floor }> {
  const iso = new Isolation();
  isolations.set(iso, undefined);
  const { db, close } = await openDatabase({ url: PG_URL, schema: iso.schema, poolSize: 1, dataDir: tmpdir() });
  const reader = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${iso.schema}` });
  try {
    await migrate(db, iso.schema);
    await sql`INSERT INTO apps (id, name, receipt_secret) VALUES ('bench', 'bench', 'floor')`.execute(db);
    await sql`INSERT INTO devices (app_id, id, platform, brand) SELECT 'bench', 'd' || lpad(i::text, 7, '0'), 'android', ${vendor} FROM generate_series(0, ${N} - 1) i`.execute(db);
    await sql`INSERT INTO device_tokens (app_id, device_id, channel, token) SELECT 'bench', 'd' || lpad(i::text, 7, '0'), ${vendor}, ${sql.raw(TOKEN_SQL)} FROM generate_series(0, ${N} - 1) i`.execute(db);
    await sql`ANALYZE devices, device_tokens`.execute(db);
    await reader.connect();

    const audience = await measure(async () => {
      const res = await reader.query({ text: `SELECT device_id, token FROM device_tokens WHERE app_id = 'bench' AND state = 'active'`, rowMode: 'array' });
      if (res.rows.length !== N) throw new Error(`audience floor read ${res.rows.length} of ${N} tokens`);
    }, true);
    const tracking = await measure(async () => {
      await sql`
        INSERT INTO deliveries (message_id, app_id, device_id, platform, channel, token, status)
        SELECT 'floor', 'bench', 'd' || lpad(i::text, 7, '0'), 'android', ${vendor}, ${sql.raw(TOKEN_SQL)}, 'queued'
        FROM generate_series(0, ${N} - 1) i`.execute(db);
      await sql`UPDATE deliveries SET status = 'sent', provider_id = 'floor', sent_at = now(), updated_at = now() WHERE message_id = 'floor'`.execute(db);
    }, false);
    return { audience, tracking };
  } finally {
    await reader.end().catch(() => undefined);
    await close();
    await drop(iso).catch(() => undefined);
    isolations.delete(iso);
  }
}

interface Floor {
  seconds: number;
  cpuSeconds: number;
}

/** Wall time and CPU of `fn`: PostgreSQL's, plus this process's when `withClient`. */
async function measure(fn: () => Promise<void>, withClient: boolean): Promise<Floor> {
  const pg0 = postgresCpuSeconds();
  const own0 = process.cpuUsage();
  const started = performance.now();
  await fn();
  const own = process.cpuUsage(own0);
  const client = withClient ? (own.user + own.system) / 1e6 : 0;
  return { seconds: (performance.now() - started) / 1000, cpuSeconds: postgresCpuSeconds() - pg0 + client };
}

// ---------------------------------------------------------------------------------------------
// Run
// ---------------------------------------------------------------------------------------------

const round = (x: number, d = 0) => Number(x.toFixed(d));
const results: Record<string, Record<string, unknown>> = {};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuSum = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);

for (const v of VENDORS) {
  const vendor = v as VendorChannel;
  let mock: MockProc | undefined;
  try {
    mock = await startMock(vendor);
    // Rounds alternate the bare loop and Relay; the median round is reported (one run of a
    // sub-second bare loop on a shared VM swings by far more than the differences measured).
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const bare = await bareLoop(vendor, mock);
      rounds.push({ bare, relay: await relayPipeline(vendor, mock) });
    }
    const ratios = rounds.map((x) => round(x.relay.rate / x.bare.rate, 3));
    const { bare, relay } = rounds[ratios.indexOf(median(ratios))]!;
    const floor = await floors(vendor);
    const bareCpu = cpuSum(bare.cpu);
    results[vendor] = {
      bareTokensPerSec: round(bare.rate),
      relayTokensPerSec: round(relay.rate),
      ratio: median(ratios),
      ratios,
      batch: BATCH[vendor],
      bareConcurrency: bare.concurrency,
      bareSeconds: round(bare.seconds, 3),
      relaySeconds: round(relay.seconds, 3),
      requestsBare: bare.requests,
      requestsRelay: relay.requests,
      pushAcceptMs: relay.acceptMs,
      relayProcesses: relay.processes,
      cpuSecondsBare: bare.cpu,
      cpuSecondsRelay: relay.cpu,
      audienceFloor: { seconds: round(floor.audience.seconds, 3), cpuSeconds: round(floor.audience.cpuSeconds, 2) },
      trackingFloor: { seconds: round(floor.tracking.seconds, 3), postgresCpuSeconds: round(floor.tracking.cpuSeconds, 2) },
      // The bare loop's work plus both floors, spread over every core at best: the shortest time
      // any pipeline that reads its audience from PostgreSQL and records each token's fate there
      // could take, against the bare loop's own.
      ceilingRatio: round(Math.min(1, bare.seconds / ((bareCpu + floor.audience.cpuSeconds + floor.tracking.cpuSeconds) / availableParallelism())), 3),
    };
  } catch (err) {
    results[vendor] = { error: interrupted ? 'interrupted' : (err as Error).message };
  } finally {
    if (mock) await stop(mock.child, 5_000);
  }
}

console.log(
  JSON.stringify({
    bench: 'vendors',
    devices: N,
    results,
    goal: 0.8,
    qpsOverride: QPS,
    bare: BARE_CONCURRENCY === undefined
      ? "provider create()+send() per vendor-batch-size chunk, as many chunks in flight as the provider's own per-credential limit"
      : `provider create()+send() per vendor-batch-size chunk, ${BARE_CONCURRENCY} in flight`,
    relaySettings: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_RELAY_')).map(([k, v]) => [k.slice('BENCH_RELAY_'.length), v])),
  }),
);
