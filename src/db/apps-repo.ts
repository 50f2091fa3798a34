import type { Kysely } from 'kysely';
import { decryptSecret, encryptSecret, isSealed, newApiKey, randomId, receiptSecretAad } from '../core/secrets.js';
import type { AppSettings, DB } from './schema.js';

export const SCOPES = ['push', 'devices', 'campaigns', 'stats', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * Apps and their API keys. An app's receipt secret (the one in its vendor receipt callback URLs)
 * is stored sealed with AES-256-GCM under CREDENTIALS_KEY, bound to the app (like provider
 * credentials, src/db/credentials-repo.ts); only receiptSecret() opens it.
 */
export class AppsRepo {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly key: Buffer,
  ) {}

  async create(id: string, name: string) {
    return this.db
      .insertInto('apps')
      .values({ id, name, receipt_secret: encryptSecret(this.key, randomId('', 24), receiptSecretAad(id)) })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning(['id', 'name', 'created_at'])
      .executeTakeFirst();
  }

  /** The app's row, without its receipt secret (see receiptSecret()). */
  async get(id: string) {
    return this.db.selectFrom('apps').select(['id', 'name', 'settings', 'created_at']).where('id', '=', id).executeTakeFirst();
  }

  /**
   * The app's receipt secret in plaintext, or null for an unknown app. A value that is not sealed
   * (written around Relay after migration 0031) or does not open under this key is refused: null.
   */
  async receiptSecret(id: string): Promise<string | null> {
    const row = await this.db.selectFrom('apps').select('receipt_secret').where('id', '=', id).executeTakeFirst();
    if (!row || !isSealed(row.receipt_secret)) return null;
    try {
      return decryptSecret(this.key, row.receipt_secret, receiptSecretAad(id));
    } catch {
      return null;
    }
  }

  async setSettings(id: string, settings: AppSettings) {
    return this.db
      .updateTable('apps')
      .set({ settings: JSON.stringify(settings) })
      .where('id', '=', id)
      .returning(['id', 'settings'])
      .executeTakeFirst();
  }

  async list() {
    return this.db.selectFrom('apps').select(['id', 'name', 'created_at']).orderBy('created_at').execute();
  }

  async createKey(appId: string, name: string | null, scopes: Scope[]) {
    const k = newApiKey();
    const row = await this.db
      .insertInto('api_keys')
      .values({ id: k.id, app_id: appId, name, scopes, hash: k.hash })
      .returning(['id', 'created_at'])
      .executeTakeFirstOrThrow();
    return { id: row.id, key: k.key, scopes, name, createdAt: row.created_at };
  }

  async listKeys(appId: string) {
    return this.db
      .selectFrom('api_keys')
      .select(['id', 'name', 'scopes', 'created_at', 'revoked_at'])
      .where('app_id', '=', appId)
      .orderBy('created_at')
      .execute();
  }

  async findKey(id: string) {
    return this.db.selectFrom('api_keys').select(['id', 'app_id', 'scopes', 'hash', 'revoked_at']).where('id', '=', id).executeTakeFirst();
  }

  async revokeKey(appId: string, id: string): Promise<boolean> {
    const res = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: new Date() })
      .where('app_id', '=', appId)
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return res.numUpdatedRows > 0n;
  }
}
