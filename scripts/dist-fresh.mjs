// Whether dist/ (from `npm run build`) is up to date with the sources; used by `npm start` and bench:startup.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new globalThis.URL('..', import.meta.url));
const SOURCES = ['src', 'providers', 'workers', 'migrations'];
const CONFIGS = ['package.json', 'tsconfig.json', 'tsconfig.build.json'];

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** True when dist/ was built after the last change to any source or build setting. */
export function distIsFresh() {
  const stamp = join(root, 'dist', '.built');
  if (!existsSync(stamp)) return false;
  const built = statSync(stamp).mtimeMs;
  const sources = SOURCES.map((d) => join(root, d)).filter(existsSync);
  const newest = Math.max(...sources.map(newestSource), ...CONFIGS.map((f) => join(root, f)).filter(existsSync).map((f) => statSync(f).mtimeMs));
  return newest <= built;
}
