// Builds sdk/dist (ESM + .d.ts) from sdk/src with the TypeScript compiler.
// Run by the repo root's `prepare` script, so a plain `npm install` leaves an importable
// `@relay/sdk`. Without TypeScript (a production install) it keeps what is there and says so.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let tsc;
try {
  tsc = createRequire(join(here, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  const have = existsSync(join(here, 'dist', 'index.js'));
  console.warn(`@relay/sdk: typescript is not installed; ${have ? 'keeping the existing' : 'no'} sdk/dist.`);
  process.exit(0);
}
rmSync(join(here, 'dist'), { recursive: true, force: true });
const res = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });
if (res.status !== 0) {
  console.error('@relay/sdk: build failed');
  process.exit(res.status ?? 1);
}
