import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { MqttDevice, RawDevice, type SelfInfo } from '../helpers/self-devices.js';

/**
 * Self channel scale-out (README: Self-hosted channel): two gateway processes, a worker process and the API (in this process) share
 * one Redis and one PostgreSQL. A push reaches the device through whichever node holds it; a
 * device that reconnects elsewhere takes its session over; a gateway killed with SIGKILL loses
 * nothing, because PostgreSQL holds every message until the device acks it.
 */

interface Child {
  proc: ChildProcess;
  /** From the 'relay started' log line. */
  started: Promise<{ mqttPort?: number; port?: number; node?: string }>;
}

function spawnRelay(env: Record<string, string>): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stderr?.on('data', () => undefined);
  const started = new Promise<{ mqttPort?: number; port?: number; node?: string }>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; mqttPort?: number; port?: number; node?: string };
        if (rec.msg === 'relay started') resolve(rec);
      } catch {
        /* not a log line */
      }
    });
    proc.once('exit', (code, signal) => reject(new Error(`relay exited before starting (${code ?? signal})`)));
  });
  return { proc, started };
}

async function stopChild(c: Child) {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill('SIGTERM');
  const timer = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
  await once(c.proc, 'exit');
  clearTimeout(timer);
}

/** Never let a missing event hang the file. */
function within<T>(p: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

let t: TestRelay;
const children: Child[] = [];
const devices: { end(): unknown }[] = [];

before(async () => {
  t = await startTestRelay({ ROLES: 'api' });
});
after(async () => {
  for (const d of devices) await Promise.resolve(d.end()).catch(() => undefined);
  await Promise.all(children.map(stopChild));
  await t?.stop();
  await t?.iso.drop();
});

test('two gateway nodes, one worker process: takeover across nodes, and a SIGKILLed node loses nothing', async () => {
  // Long ack timeout: nothing here may fall back (the device has no other channel anyway).
  const env = t.iso.env({ ROLES: 'gateway', GATEWAY_MQTT_PORT: '0', PORT: '0', SELF_ACK_TIMEOUT: '60s' });
  const gwA = spawnRelay(env);
  const gwB = spawnRelay(env);
  const worker = spawnRelay(t.iso.env({ ROLES: 'worker', WORKER_PROCESSES: '1', SELF_ACK_TIMEOUT: '60s' }));
  children.push(gwA, gwB, worker);
  const [a, b] = await within(Promise.all([gwA.started, gwB.started, worker.started]), 'three processes to start', 60_000);
  assert.ok(a!.mqttPort && b!.mqttPort && a!.mqttPort !== b!.mqttPort, 'each gateway bound its own port');
  assert.ok(a!.port, 'a gateway-only process serves MQTT over WebSocket on its own HTTP port');
  const urlA = `mqtt://127.0.0.1:${a!.mqttPort}`;
  const urlB = `mqtt://127.0.0.1:${b!.mqttPort}`;

  const { appId, api } = await newApp(t);
  const reg = await api('PUT', '/v1/devices/roamer', { platform: 'android' });
  const self = reg.body.self as SelfInfo;
  const presence = async () => (await t.relay.ctx.queues.connection.hget(`${t.config.QUEUE_PREFIX}:presence:${appId}`, 'roamer')) ?? undefined;
  const on = async (node: string) =>
    eventually(async () => {
      const p = await presence();
      return p && (JSON.parse(p) as { node: string }).node === node ? true : undefined;
    }, 15_000, `the device online on ${node}`);
  const seen: string[] = [];
  const push = async (n: number, extra: Record<string, unknown> = {}) => {
    const r = await api('POST', '/v1/push', { to: { devices: ['roamer'] }, data: { n }, ...extra });
    assert.equal(r.status, 202);
    return r.body.id as string;
  };
  const delivered = (id: string) =>
    eventually(async () => {
      const m = await api('GET', `/v1/messages/${id}`);
      return m.body.counts.delivered === 1 ? m.body : undefined;
    }, 30_000, `${id} delivered`);

  // 1. On node A: a push goes worker → Redis → A → device; its PUBACK makes it delivered.
  const c1 = await MqttDevice.connect(urlA, self, { version: 5 });
  devices.push(c1);
  await on(a!.node!);
  const m1 = await push(1);
  seen.push(...[(await c1.waitFor(m1)).body.id as string]);
  await delivered(m1);

  // 2. The device connects to B while its session on A is still open: A closes the old one.
  const c2 = await MqttDevice.connect(urlB, self, { version: 5 });
  devices.push(c2);
  await within(c1.closed, 'node A to close the session B took over');
  await on(b!.node!);
  const m2 = await push(2);
  seen.push((await c2.waitFor(m2)).body.id as string);
  await delivered(m2);
  await c2.end();

  // 3. Back on A, and a push the device receives but does not ack before A dies.
  const c3 = await RawDevice.connect(a!.mqttPort!, self, 5);
  devices.push({ end: () => c3.close() });
  await on(a!.node!);
  const m3 = await push(3);
  const got3 = await c3.waitForBody((x) => x.id === m3, 'm3 on A');
  seen.push(got3.body.id as string);
  gwA.proc.kill('SIGKILL');
  await within(once(gwA.proc, 'exit'), 'node A to die');
  await within(c3.closed, 'the connection to the dead node to drop');

  // 4. Pushed while the device is away (its presence still names the dead node).
  const m4 = await push(4, { options: { channels: ['self'] } });
  await eventually(async () => ((await api('GET', `/v1/messages/${m4}`)).body.counts.sent === 1 ? true : undefined), 30_000, 'm4 sent');

  // 5. The device comes back on B: what A left un-acked and what came meanwhile, in seq order.
  const c4 = await MqttDevice.connect(urlB, self, { version: 4 });
  devices.push(c4);
  const r3 = await c4.waitFor(m3);
  const r4 = await c4.waitFor(m4);
  assert.equal(r3.dup, true);
  assert.ok((r3.body.seq as number) < (r4.body.seq as number), 'handed out in seq order');
  assert.deepEqual(
    c4.pushes().map((r) => r.body.id),
    [m3, m4],
    'B hands out exactly what is pending, once each',
  );
  seen.push(m3, m4);
  await on(b!.node!);
  // 6. And a live push through B.
  const m5 = await push(5);
  seen.push((await c4.waitFor(m5)).body.id as string);

  for (const id of [m1, m2, m3, m4, m5]) await delivered(id);
  const unique = new Set(seen);
  assert.deepEqual([...unique].sort(), [m1, m2, m3, m4, m5].sort(), 'every message reached the device; none lost');
  const seqs = [...c1.pushes(), ...c2.pushes(), ...c4.pushes()].map((r) => r.body.seq as number);
  assert.deepEqual([...new Set(seqs)].sort((x, y) => x - y), [1, 2, 3, 4, 5], 'one seq per message, per device');
});
