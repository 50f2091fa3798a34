import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** AES-256-GCM for credentials at rest: `v1.<iv>.<tag>.<ciphertext>`, each base64url. */
export function encryptSecret(key: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), ct].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

/**
 * The additional data binds a ciphertext to its row (app + provider), so a ciphertext copied onto
 * another app's row does not decrypt.
 */
export function decryptSecret(key: Buffer, sealed: string, aad: string): string {
  const [v, iv, tag, ct] = sealed.split('.');
  if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unknown credential format');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
}

/** Whether a stored value is an `encryptSecret` output (else it is legacy plaintext). */
export function isSealed(value: string): boolean {
  return /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value);
}

/** The additional data of an app's sealed receipt secret: never a credential's `<app>/<provider>`. */
export function receiptSecretAad(appId: string): string {
  return `receipt-secret:${appId}`;
}

/** API keys look like `rk_<id>_<secret>`; only sha256(secret) is stored. */
export function newApiKey(): { id: string; key: string; hash: string } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  return { id, key: `rk_${id}_${secret}`, hash: sha256(secret) };
}

export function parseApiKey(key: string): { id: string; secret: string } | null {
  const m = /^rk_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$/.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Compares a secret in constant time: timingSafeEqual over the SHA-256 digests, which always have
 * the same length, so neither the content nor the length of the expected secret (operator token,
 * receipt secret, key hash) shows in the time a wrong guess takes.
 */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * Random bytes drawn from a pool filled 4 KiB at a time: an id per accepted push made
 * `randomBytes` (a call into OpenSSL each) one of the API's hottest frames.
 */
let pool = Buffer.alloc(0);
let poolAt = 0;

export function randomId(prefix: string, bytes = 12): string {
  if (bytes > 4096) return `${prefix}${randomBytes(bytes).toString('base64url')}`;
  if (poolAt + bytes > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  const id = pool.toString('base64url', poolAt, poolAt + bytes);
  // Never handed out twice: the used bytes are zeroed, so nothing leaks from the pool later.
  pool.fill(0, poolAt, poolAt + bytes);
  poolAt += bytes;
  return `${prefix}${id}`;
}

/** Shows enough of a token to recognise it, never enough to use it: `…a1b2`. */
export function maskToken(token: string): string {
  return `…${token.slice(-4)}`;
}
