import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from './config.js';

export interface Secrets {
  adminToken: string;
  credentialsKey: Buffer;
  deviceTokenSecret: string;
}

/**
 * Secrets come from the environment, or are generated once into DATA_DIR (mode 0600) so that a
 * first `npm start` needs no setup. The operator token is printed only when it is generated.
 */
export function loadSecrets(config: Config, announce: (line: string) => void): Secrets {
  const dir = resolve(config.DATA_DIR);
  mkdirSync(dir, { recursive: true });
  const adminToken =
    config.ADMIN_TOKEN ??
    fromFile(join(dir, 'admin-token'), () => `adm_${randomBytes(24).toString('base64url')}`, (t) =>
      announce(`Operator token (shown once, kept in ${join(dir, 'admin-token')}): ${t}`),
    );
  const keyText = config.CREDENTIALS_KEY ?? fromFile(join(dir, 'credentials.key'), () => randomBytes(32).toString('base64'));
  const credentialsKey = Buffer.from(keyText, 'base64');
  const deviceTokenSecret =
    config.DEVICE_TOKEN_SECRET ?? createHmac('sha256', credentialsKey).update('relay device tokens').digest('base64url');
  return { adminToken, credentialsKey, deviceTokenSecret };
}

function fromFile(path: string, make: () => string, onCreate?: (value: string) => void): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const value = make();
  writeFileSync(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
  onCreate?.(value);
  return value;
}
