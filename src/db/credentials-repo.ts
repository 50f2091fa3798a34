import type { Kysely } from 'kysely';
import { decryptSecret, encryptSecret } from '../core/secrets.js';
import type { DB } from './schema.js';

export interface StoredCredential {
  provider: string;
  info: Record<string, unknown>;
  version: number;
  updatedAt: Date;
}

/** Credentials are sealed with AES-256-GCM, bound to their (app, provider) row. */
export class CredentialsRepo {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly key: Buffer,
  ) {}

  async put(appId: string, provider: string, credential: unknown, info: Record<string, unknown>): Promise<StoredCredential> {
    const secret = encryptSecret(this.key, JSON.stringify(credential), `${appId}/${provider}`);
    const row = await this.db
      .insertInto('credentials')
      .values({ app_id: appId, provider, secret, info: JSON.stringify(info), updated_at: new Date() })
      .onConflict((oc) =>
        oc.columns(['app_id', 'provider']).doUpdateSet((eb) => ({
          secret,
          info: JSON.stringify(info),
          version: eb('credentials.version', '+', 1),
          updated_at: new Date(),
        })),
      )
      .returning(['provider', 'info', 'version', 'updated_at'])
      .executeTakeFirstOrThrow();
    return { provider: row.provider, info: row.info, version: row.version, updatedAt: row.updated_at };
  }

  async list(appId: string): Promise<StoredCredential[]> {
    const rows = await this.db
      .selectFrom('credentials')
      .select(['provider', 'info', 'version', 'updated_at'])
      .where('app_id', '=', appId)
      .orderBy('provider')
      .execute();
    return rows.map((r) => ({ provider: r.provider, info: r.info, version: r.version, updatedAt: r.updated_at }));
  }

  async providers(appId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('credentials').select('provider').where('app_id', '=', appId).execute();
    return rows.map((r) => r.provider);
  }

  async version(appId: string, provider: string): Promise<number | null> {
    const row = await this.db
      .selectFrom('credentials')
      .select('version')
      .where('app_id', '=', appId)
      .where('provider', '=', provider)
      .executeTakeFirst();
    return row?.version ?? null;
  }

  async load(appId: string, provider: string): Promise<{ version: number; credential: unknown } | null> {
    const row = await this.db
      .selectFrom('credentials')
      .select(['secret', 'version'])
      .where('app_id', '=', appId)
      .where('provider', '=', provider)
      .executeTakeFirst();
    if (!row) return null;
    return { version: row.version, credential: JSON.parse(decryptSecret(this.key, row.secret, `${appId}/${provider}`)) };
  }

  async delete(appId: string, provider: string): Promise<boolean> {
    const res = await this.db.deleteFrom('credentials').where('app_id', '=', appId).where('provider', '=', provider).executeTakeFirst();
    return res.numDeletedRows > 0n;
  }
}
