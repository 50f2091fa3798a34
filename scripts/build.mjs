// `npm run build`: the device SDK (sdk/dist) and the server (dist/, plain `tsc` emit of src,
// providers, workers and migrations), then a stamp scripts/start.mjs compares against the
// sources' modification times to tell whether dist/ is up to date.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const run = (args) => {
  const res = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (res.status !== 0) process.exit(res.status ?? 1);
};
run(['sdk/build.mjs']);
// A clean emit: a deleted source must not leave its old .js behind.
rmSync('dist', { recursive: true, force: true });
run([createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
writeFileSync('dist/.built', `${new Date().toISOString()}\n`);
