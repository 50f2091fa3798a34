import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import { encryptSecret, isSealed, receiptSecretAad } from '../src/core/secrets.js';

/**
 * Receipt secrets (the per-app secret in a vendor's receipt callback URL) were stored in plaintext;
 * from now on `apps.receipt_secret` holds them sealed with AES-256-GCM under CREDENTIALS_KEY, the
 * way provider credentials are (src/db/credentials-repo.ts). This seals every existing row in
 * place; the callback URLs already configured at the vendors stay valid (same secret).
 * Without the key (a caller that migrates a schema with no Relay around it) only an empty table
 * can be migrated: a plaintext row is never left behind silently.
 */
export function sealReceiptSecrets(key: Buffer | undefined): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      const { rows } = await sql<{ id: string; receipt_secret: string }>`SELECT id, receipt_secret FROM apps`.execute(db);
      const plain = rows.filter((r) => !isSealed(r.receipt_secret));
      if (plain.length === 0) return;
      if (!key) throw new Error(`migration 0031: ${plain.length} receipt secrets to seal, but no CREDENTIALS_KEY was given`);
      for (const r of plain) {
        const sealed = encryptSecret(key, r.receipt_secret, receiptSecretAad(r.id));
        await sql`UPDATE apps SET receipt_secret = ${sealed} WHERE id = ${r.id} AND receipt_secret = ${r.receipt_secret}`.execute(db);
      }
    },
  };
}
