import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { distIsFresh } from '../../scripts/dist-fresh.mjs';
import { Isolation, client, eventually, newApp, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/**
 * What the Dockerfile does, without Docker (no daemon or registry is reachable here): the build
 * stage's `npm run build`, then the image's CMD, `node dist/src/main.js`, once per compose service
 * with its ROLES, sharing this test's PostgreSQL schema and Redis prefix.
 */
const DEVICES = 300;
const iso = new Isolation();
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const procs: ChildProcess[] = [];

/** Starts the compiled entry with a role; resolves with the HTTP port it logged in `relay started`. */
async function startRole(roles: string, extra: Record<string, string> = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['dist/src/main.js'], {
    env: { ...process.env, ...iso.env({ ...mocks.env, LOG_LEVEL: 'info', ROLES: roles, ...extra }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  procs.push(child);
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${roles} exited with ${code} before it was up`)));
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'relay started' && entry.port !== undefined) resolve(entry.port);
      } catch {
        /* not a log line */
      }
    });
  });
  return { child, port };
}

before(async () => {
  // .ci/run builds before the tests, as the image's build stage does; built again only when stale.
  if (!distIsFresh()) {
    const build = spawnSync(process.execPath, ['scripts/build.mjs'], { encoding: 'utf8' });
    assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
  }
  mocks = await startProviderMocks();
});
after(async () => {
  for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await iso.drop();
  await mocks?.close();
});

test('the compiled build runs each role alone; every role answers /healthz and /readyz; forked workers’ metrics add up', async () => {
  // The API first (it migrates the schema), then the others side by side; two forked worker
  // processes run under one supervisor, which answers health and metrics on HEALTH_PORT.
  const api = await startRole('api');
  const [worker, gateway, scheduler] = await Promise.all([
    startRole('worker', { WORKER_PROCESSES: '2', HEALTH_PORT: '0' }),
    startRole('gateway'),
    startRole('scheduler', { HEALTH_PORT: '0' }),
  ]);
  const roles = { api, worker, gateway, scheduler };

  for (const [name, { port }] of Object.entries(roles)) {
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200, `${name} /healthz`);
    const ready = await eventually(async () => {
      const r = await fetch(`${base}/readyz`);
      return r.status === 200 ? ((await r.json()) as { checks: Record<string, string> }) : undefined;
    }, 30_000, `${name} to be ready`);
    assert.equal(ready.checks.database, 'ok', `${name} checks the database`);
    assert.equal(ready.checks.redis, 'ok', `${name} checks Redis`);
  }
  const workerReady = (await (await fetch(`http://127.0.0.1:${worker.port}/readyz`)).json()) as { checks: Record<string, string> };
  assert.equal(workerReady.checks.workerProcesses, 'ok');

  // A push through the API process, sent by the two forked workers: the supervisor's /metrics
  // counts every delivery, whichever process sent it.
  const t = { base: `http://127.0.0.1:${api.port}`, adminToken: iso.env().ADMIN_TOKEN! } as TestRelay;
  const { appId, api: call } = await newApp(t);
  assert.equal((await call('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  for (let i = 0; i < DEVICES; i += 100) {
    const batch = Array.from({ length: 100 }, (_, j) => i + j);
    await Promise.all(batch.map((n) => call('PUT', `/v1/devices/d-${n}`, { platform: 'ios', tokens: { apns: n.toString(16).padStart(64, 'c') }, tags: ['deploy'] })));
  }
  const pushed = await call('POST', '/v1/push', { to: { tags: { all: ['deploy'] } }, notification: { title: 'deploy' } });
  assert.equal(pushed.status, 202);
  await eventually(async () => ((await call('GET', `/v1/messages/${pushed.body.id}`)).body.state === 'done' ? true : undefined), 60_000, 'the push to be sent');
  const sentMetric = await eventually(async () => {
    const text = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
    const m = /^relay_delivery_outcomes_total\{channel="apns",outcome="sent"\} (\d+)/m.exec(text);
    return m && Number(m[1]) === DEVICES ? Number(m[1]) : undefined;
  }, 20_000, 'the supervisor to report every delivery');
  assert.equal(sentMetric, DEVICES);

  // The gateway-only process serves no API, but says where MQTT over WebSocket is.
  const gw404 = await client(`http://127.0.0.1:${gateway.port}`)('GET', '/v1/apps');
  assert.equal(gw404.status, 404);

  // SIGTERM: every role shuts down cleanly.
  for (const [name, { child }] of Object.entries(roles)) {
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, `${name} exited cleanly`);
  }
});
