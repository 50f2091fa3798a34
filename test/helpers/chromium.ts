import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Debian's `chromium` (what .ci/run installs), or CHROMIUM_PATH. Looked up on PATH first, then at
 * the usual install locations, so a distribution that names it chromium-browser works too.
 */
export function chromiumPath(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH=${fromEnv} does not exist`);
    return fromEnv;
  }
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    try {
      const p = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
      if (p) return p;
    } catch {
      /* not on PATH */
    }
  }
  for (const p of ['/usr/bin/chromium', '/usr/lib/chromium/chromium', '/snap/bin/chromium']) if (existsSync(p)) return p;
  throw new Error('no Chromium found: `apt-get install -y chromium` (as .ci/run does) or set CHROMIUM_PATH');
}
