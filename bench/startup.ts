/**
 * Time to ready (issue 13): how long `npm start` on the embedded default (PGlite, every role in
 * one process) takes from spawn until `/readyz` answers 200, from the TypeScript sources through
 * tsx (what `npm start` ran before `npm run build` existed, and still runs without a fresh build)
 * against the compiled `dist/` that `npm start` now runs when it is up to date. Both start on the
 * same warm data folder, in alternating rounds; a bare `node -e` start is the machine's baseline.
 * Prints one JSON line.
 *
 *   npm run build && npm run bench:startup -- [--rounds 3]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { distIsFresh } from '../scripts/dist-fresh.mjs';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const ROUNDS = Number(values.rounds);

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

const dataDir = `/tmp/relay-startup-${randomBytes(4).toString('hex')}`;
const prefix = `relay-startup-${randomBytes(4).toString('hex')}`;

/** Spawns one start, polls /readyz every 20 ms, stops it with SIGTERM; returns ms to ready. */
async function timeToReady(cmd: string[]): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const { DATABASE_URL: _embedded, ...env } = process.env;
  const child = spawn(cmd[0]!, cmd.slice(1), {
    env: { ...env, DATA_DIR: dataDir, QUEUE_PREFIX: prefix, PORT: String(port), GATEWAY_MQTT_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${cmd.join(' ')} exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) return performance.now() - started;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
}

async function bare(): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(child, 'exit');
  return performance.now() - started;
}

if (!distIsFresh()) throw new Error('dist/ is missing or older than the sources: run `npm run build` first');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const tsxCmd = [process.execPath, 'node_modules/tsx/dist/cli.mjs', 'src/main.ts'];
const distCmd = [process.execPath, 'scripts/start.mjs'];
try {
  await timeToReady(distCmd); // creates and migrates the embedded database: both variants then start warm
  const tsx: number[] = [];
  const dist: number[] = [];
  const node: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    tsx.push(await timeToReady(tsxCmd));
    dist.push(await timeToReady(distCmd));
    node.push(await bare());
  }
  const r = (x: number) => Math.round(x);
  console.log(
    JSON.stringify({
      bench: 'startup',
      rounds: ROUNDS,
      tsxMs: r(median(tsx)),
      distMs: r(median(dist)),
      bareNodeMs: r(median(node)),
      distOverTsx: Number((median(dist) / median(tsx)).toFixed(2)),
      samples: { tsx: tsx.map(r), dist: dist.map(r), bareNode: node.map(r) },
    }),
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
