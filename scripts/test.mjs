// Runs every test file under test/ with Node's own runner (through tsx for TypeScript).
// Usage: npm test [-- path-filter ...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir, suffix) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p, suffix) : p.endsWith(suffix) ? [p] : [];
  });
}

// `npm run test:chaos` (--chaos): the fault-injection suites, test/chaos/*.chaos.ts, on their own.
const chaos = process.argv.includes('--chaos');
const filters = process.argv.slice(2).filter((a) => a !== '--chaos');
const suffix = chaos ? '.chaos.ts' : '.test.ts';
const files = walk(chaos ? 'test/chaos' : 'test', suffix)
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// Mock providers serve TLS from a throw-away test CA; every test process trusts it the way a
// deployment trusts a private CA: through NODE_EXTRA_CA_CERTS, read by Node at start-up.
const pki = spawnSync(
  process.execPath,
  ['--import', 'tsx', '-e', "import('./test/mocks/tls.ts').then((m) => console.log(m.testPki().caPath))"],
  { encoding: 'utf8' },
);
if (pki.status !== 0) {
  console.error(pki.stderr);
  process.exit(1);
}
const res = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', `--test-timeout=${chaos ? 900_000 : 180_000}`, ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test', NODE_EXTRA_CA_CERTS: pki.stdout.trim() } },
);
process.exit(res.status ?? 1);
