/**
 * Gateway storm (issue 13, item 2): 5,000 SDK devices (RelayDevice over MQTT.js) on one gateway
 * node behind a TCP front (a load balancer's part: forward to the live node). The node is
 * SIGKILLed with a push on its way; every device reconnects through the front to the other node,
 * the pending push arrives on the new connection, nothing is shown twice, and the surviving
 * node's memory stays bounded. Prints one JSON line of figures.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { RelayDevice } from '../../sdk/src/index.js';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { NatProxy } from '../helpers/nat-proxy.js';

// Issue 13 asks for 5,000+. The figures printed say where a slow storm's time goes: node B spends
// about 1 ms of CPU per reconnect (≈5 s for 5,000, event loop never blocked past a few hundred ms);
// the rest is the shared 2-core machine's load (at a load average of 20, 5,000 came back in 63 s,
// alone in 4 s) and the retries of SDK connects that timed out meanwhile (`retries`).
// STORM_DEVICES overrides the count; STORM_VERBOSE prints progress; STORM_PROF writes CPU profiles
// of the gateway nodes to /tmp/stormprof (node B's, as it exits on SIGTERM).
const DEVICES = Number(process.env.STORM_DEVICES ?? 5000);

interface Child {
  proc: ChildProcess;
  started: Promise<{ mqttPort?: number; node?: string; port?: number }>;
}

function spawnRelay(env: Record<string, string>): Child {
  // Debug level: every connect, refusal and takeover is logged, and every line is scanned for the
  // devices' passwords and the API key at the end.
  const proc = spawn(process.execPath, [...(process.env.STORM_PROF && env.ROLES === 'gateway' ? ['--cpu-prof', '--cpu-prof-dir=/tmp/stormprof'] : []), '--import', 'tsx', 'src/main.ts'], { env: { ...process.env, ...env, LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr?.on('data', () => undefined);
  const started = new Promise<{ mqttPort?: number; node?: string; port?: number }>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      logLines.push(line);
      try {
        const rec = JSON.parse(line) as { msg?: string; mqttPort?: number; node?: string; port?: number };
        if (rec.msg === 'relay started') resolve(rec);
      } catch {
        /* not a log line */
      }
    });
    proc.once('exit', (code, signal) => reject(new Error(`relay exited before starting (${code ?? signal})`)));
  });
  return { proc, started };
}

/** CPU seconds (user + system) a child process has used so far, from /proc. */
function cpuSec(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** The largest event-loop delay node B saw since its last scrape (prom-client resets it per scrape). */
async function loopLagMaxMs(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
  return m ? Math.round(Number(m[1]) * 1000) : NaN;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** Every log line the spawned processes wrote. */
const logLines: string[] = [];

let t: TestRelay;
let front: NatProxy;
const children: Child[] = [];
const devices: RelayDevice[] = [];

before(async () => {
  t = await startTestRelay({ ROLES: 'api' });
});
after(async () => {
  await Promise.allSettled(devices.map((d) => d.close()));
  // SIGTERM first (a profiled node writes its profile on exit), SIGKILL whatever is still up.
  const live = children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
  for (const c of live) c.proc.kill('SIGTERM');
  await Promise.race([Promise.all(live.map((c) => once(c.proc, 'exit'))), new Promise((r) => setTimeout(r, 15_000))]);
  for (const c of live) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  await front?.close();
  await t?.stop();
  await t?.iso.drop();
});

test(`${DEVICES} SDK devices: their gateway node is killed, all reconnect to the other, the pending push arrives once`, { timeout: 600_000 }, async () => {
  const env = t.iso.env({ ROLES: 'gateway', GATEWAY_MQTT_PORT: '0', PORT: '0', SELF_ACK_TIMEOUT: '120s' });
  const gwA = spawnRelay(env);
  const gwB = spawnRelay(env);
  const worker = spawnRelay(t.iso.env({ ROLES: 'worker,scheduler', WORKER_PROCESSES: '1', SELF_ACK_TIMEOUT: '120s', SWEEP_INTERVAL: '5s' }));
  children.push(gwA, gwB, worker);
  const [a, b] = await Promise.all([gwA.started, gwB.started, worker.started]);
  // The front forwards new connections to the live node: a load balancer whose health check
  // has not noticed anything yet, then has.
  const target = { host: '127.0.0.1', port: a!.mqttPort! };
  front = new NatProxy({ target });
  await front.listen();

  const { api, key } = await newApp(t);
  const passwords = new Map<string, string>();
  const ids = Array.from({ length: DEVICES }, (_, i) => `storm-${i}`);
  for (let i = 0; i < ids.length; i += 100) {
    await Promise.all(
      ids.slice(i, i + 100).map(async (id) => {
        const r = await api('PUT', `/v1/devices/${id}`, { platform: 'android', tags: ['storm'] });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        passwords.set(id, r.body.self.password as string);
      }),
    );
  }

  const shown = new Map<string, string[]>();
  for (const id of ids) {
    const dev = new RelayDevice({
      url: `mqtt://127.0.0.1:${front.port}`,
      deviceId: id,
      password: passwords.get(id)!,
      network: 'storm',
      reconnect: { minSec: 0.5, maxSec: 8 },
      connectTimeoutSec: 20,
    });
    dev.on('error', () => undefined);
    shown.set(id, []);
    dev.on('message', (m) => shown.get(id)!.push(m.id));
    devices.push(dev);
  }
  const t0 = Date.now();
  for (let i = 0; i < devices.length; i += 250) await Promise.all(devices.slice(i, i + 250).map((d) => d.connect()));
  const connectMs = Date.now() - t0;
  const rssA = rssMb(gwA.proc.pid!);
  const rssB0 = rssMb(gwB.proc.pid!);

  const push = async (n: number) => {
    const r = await api('POST', '/v1/push', { to: { tags: { all: ['storm'] } }, data: { n }, options: { channels: ['self'] } });
    assert.equal(r.status, 202);
    assert.equal(r.body.recipients, DEVICES);
    return r.body.id as string;
  };
  const allShown = (id: string, ms: number, what: string) =>
    eventually(async () => ([...shown.values()].every((list) => list.includes(id)) ? true : undefined), ms, what);

  const m1 = await push(1);
  await allShown(m1, 120_000, 'the first push on node A');

  // Node A dies with the second push on its way; the front now sends new connections to B.
  const m2 = await push(2);
  await loopLagMaxMs(b!.port!); // resets node B's figure: the next scrape covers the storm only
  const cpuB0 = cpuSec(gwB.proc.pid!);
  const cpuTest0 = process.cpuUsage();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const attempts0 = devices.reduce((s, d) => s + d.stats.attempts, 0);
  // Back means connected again since the kill: right after it most devices have not yet seen
  // their connection close and still read as connected.
  const connects0 = devices.map((d) => d.stats.connects);
  const back = () => devices.filter((d, i) => d.connected && d.stats.connects > connects0[i]!).length;
  gwA.proc.kill('SIGKILL');
  await once(gwA.proc, 'exit');
  const killedAt = Date.now();
  target.port = b!.mqttPort!;
  const progress = process.env.STORM_VERBOSE
    ? setInterval(() => console.error(`storm: +${Date.now() - killedAt} ms ${back()}/${DEVICES} back, ${front.activeCount} links, attempts ${devices.reduce((s, d) => s + d.stats.attempts, 0)}`), 5000)
    : undefined;
  progress?.unref();
  await eventually(async () => (back() === DEVICES ? true : undefined), 180_000, 'every device back, on node B').catch((err: unknown) => {
    throw new Error(`${String(err)}: ${back()} of ${DEVICES} back, ${front.activeCount} links`);
  });
  clearInterval(progress);
  const reconnectMs = Date.now() - killedAt;
  lag.disable();
  const cpuTest = process.cpuUsage(cpuTest0);
  const storm = {
    // Attempts beyond one per device: connects that timed out or failed and were tried again.
    retries: devices.reduce((s, d) => s + d.stats.attempts, 0) - attempts0 - DEVICES,
    nodeBCpuSec: Math.round((cpuSec(gwB.proc.pid!) - cpuB0) * 10) / 10,
    nodeBLoopLagMaxMs: await loopLagMaxMs(b!.port!),
    testProcessCpuSec: Math.round((cpuTest.user + cpuTest.system) / 1e5) / 10,
    testProcessLoopLagMaxMs: Math.round(lag.max / 1e6),
    loadAverage: Math.round(loadavg()[0]! * 10) / 10,
  };
  await allShown(m2, 180_000, 'the pending push on node B');
  const pendingMs = Date.now() - killedAt;
  const rssB = rssMb(gwB.proc.pid!);

  let twice = 0;
  for (const list of shown.values()) twice += list.length - new Set(list).size;
  assert.equal(twice, 0, 'no message shown twice');
  for (const list of shown.values()) assert.deepEqual([...list].sort(), [m1, m2].sort());
  // Bounded: the storm costs the surviving node well under 100 KB per device over its idle RSS.
  const perDeviceKb = ((rssB - rssB0) * 1024) / DEVICES;
  assert.ok(perDeviceKb < 100, `node B grew ${rssB - rssB0} MB for ${DEVICES} devices`);

  // No device password (nor its signature alone) and no API key in any line the nodes and the worker wrote.
  const secrets = new Map<string, string>([[key, 'the API key'], [key.split('_').slice(2).join('_'), 'the API key secret']]);
  for (const [id, password] of passwords) {
    secrets.set(password, `the password of ${id}`);
    secrets.set(password.split('.').at(-1)!, `the password signature of ${id}`);
  }
  const leaks: string[] = [];
  for (const line of logLines) {
    for (const word of line.match(/[A-Za-z0-9_.-]{16,}/g) ?? []) {
      for (const part of [word, ...word.split('.'), ...word.split('_')]) if (secrets.has(part)) leaks.push(`${secrets.get(part)}: ${line.slice(0, 200)}`);
    }
  }
  assert.ok(logLines.length > DEVICES, `the nodes logged each connect (${logLines.length} lines)`);
  assert.deepEqual(leaks.slice(0, 5), [], `${leaks.length} secrets in ${logLines.length} log lines`);

  console.log(
    JSON.stringify({
      chaos: 'gateway-storm',
      logLinesScanned: logLines.length,
      devices: DEVICES,
      connectMs,
      reconnectAllMs: reconnectMs,
      ...storm,
      pendingShownMs: pendingMs,
      shownTwice: twice,
      duplicatesSuppressed: devices.reduce((s, d) => s + d.stats.duplicates, 0),
      nodeARssMb: rssA,
      nodeBRssMb: rssB,
      nodeBRssBeforeMb: rssB0,
      nodeBKbPerDevice: Math.round(perDeviceKb * 10) / 10,
      testProcessRssMb: Math.round(process.memoryUsage().rss / 1048576),
    }),
  );
});
