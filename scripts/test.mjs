// Runs every test file under test/ with Node's own runner (through tsx for TypeScript).
// Usage: npm test [-- path-filter ...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
}

const filters = process.argv.slice(2);
const files = walk('test')
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
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=180000', ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test', NODE_EXTRA_CA_CERTS: pki.stdout.trim() } },
);
process.exit(res.status ?? 1);
