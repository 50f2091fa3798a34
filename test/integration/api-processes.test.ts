import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { Isolation, client, eventually } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { freePort } from '../helpers/redis-server.js';

/**
 * API_PROCESSES=2: `npm start`'s process forks two API processes (node:cluster) sharing PORT,
 * and keeps the worker and scheduler roles itself. Requests spread over both, pushes go end to
 * end, /healthz answers, and one SIGTERM drains and ends every process.
 */
const iso = new Isolation();
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
let relay: ChildProcess;
let port: number;
let output = '';

before(async () => {
  mocks = await startProviderMocks();
  port = await freePort();
  relay = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, ...iso.env({ ...mocks.env, PORT: String(port), HEALTH_PORT: '0', ROLES: 'api,worker,scheduler', API_PROCESSES: '2', WORKER_PROCESSES: '1', LOG_LEVEL: 'warn' }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  relay.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  relay.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
});
after(async () => {
  if (relay && relay.exitCode === null && relay.signalCode === null) {
    relay.kill('SIGKILL');
    await once(relay, 'exit');
  }
  await iso.drop();
  await mocks?.close();
});

/** One request on its own connection, so the primary's round-robin hands each to the next process. */
function fresh(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; process: string | undefined; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, process: res.headers['relay-api-process'] as string | undefined, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

function readCmd(pid: number): string {
  try {
    return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`;
  } catch {
    return `${pid}: gone`;
  }
}

const apnsToken = (i: number) => 'a' + i.toString(16).padStart(63, '0');

test('two API processes share the port, both serve pushes, and SIGTERM drains them all', async () => {
  const base = `http://127.0.0.1:${port}`;
  // Both processes up: each answers /healthz for itself (the primary's round-robin alternates).
  const up = new Set<string>();
  await eventually(async () => {
    const h = await fresh('GET', '/healthz', '');
    if (h.status === 200 && h.process) up.add(h.process);
    return up.size === 2 ? true : undefined;
  }, 120_000, `healthz of both API processes (output: ${output})`);
  const op = client(base, 'test-operator-token-0123456789');
  const appId = 'app_multi';
  assert.equal((await op('POST', '/v1/apps', { id: appId, name: appId })).status, 201);
  const key = (await op('POST', `/v1/apps/${appId}/keys`, { scopes: ['push', 'devices', 'admin'] })).body.key as string;
  const api = client(base, key);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  for (let i = 1; i <= 8; i++) assert.equal((await api('PUT', `/v1/devices/m-${i}`, { platform: 'ios', tokens: { apns: apnsToken(i) } })).status, 200);

  const pushes = await Promise.all(Array.from({ length: 16 }, (_, i) => fresh('POST', '/v1/push', key, { to: { devices: [`m-${(i % 8) + 1}`] }, notification: { title: `p${i}` } })));
  for (const p of pushes) assert.equal(p.status, 202);
  const served = new Set(pushes.map((p) => p.process));
  assert.deepEqual([...served].sort(), ['1', '2'], `both API processes answered (output: ${output})`);
  for (const p of pushes) {
    await eventually(async () => {
      const m = await api('GET', `/v1/messages/${p.body.id}`);
      return m.body.state === 'done' && m.body.counts.sent === 1 ? true : undefined;
    }, 60_000, `push ${p.body.id} sent`);
  }

  // The primary's node children (tsx also runs an esbuild service process per node process).
  const children = spawnSync('pgrep', ['-P', String(relay.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number)
    .filter((pid) => readCmd(pid).includes('src/main.ts'));
  assert.ok(children.length >= 2, `the API processes are children of the primary: ${children.join(',')}`);
  relay.kill('SIGTERM');
  const [code] = (await once(relay, 'exit')) as [number | null];
  assert.equal(code, 0, `clean exit (output: ${output})`);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // A drained API process may still be unwinding its last exit step when the primary exits.
  await eventually(async () => (children.some(alive) ? undefined : true), 10_000, `every API process to exit (${children.filter(alive).map((p) => readCmd(p)).join('; ')})`);
});
