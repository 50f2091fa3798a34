/**
 * The SDK as its users get it: `import { RelayDevice } from '@relay/sdk'` from plain Node ESM
 * (no tsx) after `npm install` at the repo root (workspace link + the `prepare` build of sdk/dist).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lead } from './harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let lead: Lead;

before(async () => {
  lead = await Lead.start();
});
after(async () => {
  await lead.close();
});

test('sdk/dist is built and not older than sdk/src', () => {
  const built = statSync(join(root, 'sdk', 'dist', 'index.js'), { throwIfNoEntry: false });
  assert.ok(built, 'sdk/dist is missing: run `npm install` (its prepare step builds the SDK) or `npm run build -w sdk`');
  for (const f of readdirSync(join(root, 'sdk', 'src'))) {
    const src = statSync(join(root, 'sdk', 'src', f));
    const out = statSync(join(root, 'sdk', 'dist', f.replace(/\.ts$/, '.js')), { throwIfNoEntry: false });
    assert.ok(out && out.mtimeMs >= src.mtimeMs, `sdk/dist is older than sdk/src/${f}: run \`npm run build -w sdk\``);
  }
});

test("plain Node ESM: import { RelayDevice } from '@relay/sdk', connect, receive, close", { timeout: 30_000 }, async () => {
  const deviceId = 'pkg-dev-1';
  const script = `
    import { RelayDevice } from '@relay/sdk';
    const dev = new RelayDevice({ url: process.env.URL, apiBase: process.env.API, deviceId: process.env.ID, password: process.env.PW,
      heartbeat: { initialSec: 1, minSec: 0.5 } });
    dev.on('message', async (m) => {
      console.log(JSON.stringify({ id: m.id, channel: m.channel }));
      setTimeout(() => dev.close(), 50);
    });
    await dev.connect();
    console.log(JSON.stringify({ connected: dev.connected, intervalSec: dev.intervalSec }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, NODE_OPTIONS: '', URL: lead.tcpUrl, API: lead.apiBase, ID: deviceId, PW: lead.password(deviceId) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await lead.until(() => lead.isOnline(deviceId), 15_000, 'the child online');
    lead.send(deviceId, 'pkg-m-1');
    const code = await exited;
    assert.equal(code, 0, err);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines, [{ connected: true, intervalSec: 1 }, { id: 'pkg-m-1', channel: 'self' }]);
    await lead.until(() => lead.find('ack', (e) => e.id === 'pkg-m-1').length === 1, 5000, 'ack');
  } finally {
    child.kill();
  }
});
