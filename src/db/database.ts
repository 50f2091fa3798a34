import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import type { Logger } from 'pino';
import { migrationsFor, type MigrationEnv } from '../../migrations/index.js';
import { pglitePool } from './pglite-pool.js';
import type { DB } from './schema.js';

export interface Database {
  db: Kysely<DB>;
  kind: 'postgres' | 'pglite';
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  schema: string;
  poolSize: number;
  dataDir: string;
  /** An idle pooled connection failed (the server restarted): reported, never fatal. */
  onIdleError?: (err: Error) => void;
}

/** PostgreSQL when a URL is given, else an embedded PGlite under the data folder. */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.url) {
    if (opts.schema !== 'public') await ensureSchema(opts.url, opts.schema);
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize,
      options: `-c search_path=${opts.schema}`,
    });
    // A client whose server went away (a PostgreSQL restart) emits 'error'; unhandled, that
    // kills the process. The pool drops that client and connects anew on the next
    // query, which is all a restart needs (https://node-postgres.com/apis/pool#error).
    pool.on('error', (err) => opts.onIdleError?.(err));
    // A checked-out client (a transaction between two statements) emits it on itself instead.
    pool.on('connect', (c) => c.on('error', (err) => opts.onIdleError?.(err)));
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return { db, kind: 'postgres', close: () => db.destroy() };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const dir = resolve(opts.dataDir, 'pgdata');
  mkdirSync(dir, { recursive: true });
  // int8 as text, as node-postgres returns it, so ids look the same on both databases.
  const pglite = await PGlite.create(dir, { parsers: { 20: (v: string) => v } });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: pglitePool(pglite) }) });
  return { db, kind: 'pglite', close: () => db.destroy() };
}

async function ensureSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  } finally {
    await client.end();
  }
}

/**
 * Applies pending migrations. Kysely's PostgreSQL adapter holds a transaction-scoped advisory lock
 * while it migrates, so several processes starting at once apply each migration exactly once.
 */
export async function migrate(db: Kysely<DB>, schema: string, logger?: Logger, env: MigrationEnv = {}): Promise<void> {
  const migrations = migrationsFor(env);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableSchema: schema === 'public' ? undefined : schema,
  });
  for (let attempt = 1; ; attempt++) {
    const { error, results } = await migrator.migrateToLatest();
    for (const r of results ?? []) {
      if (r.status === 'Success') logger?.info({ migration: r.migrationName }, 'migration applied');
    }
    if (!error) return;
    // Kysely's introspector reads every schema's tables through pg_get_serial_sequence(), which
    // fails (3F000) when another schema is dropped while it runs: another tenant of a shared
    // server, or a test's isolation schema. That schema is none of ours: look again.
    const e = error as { code?: string; message?: string };
    if (attempt < 5 && e.code === '3F000' && !e.message?.includes(`"${schema}"`)) {
      logger?.warn({ err: error, attempt }, 'another schema was dropped while migrating; retrying');
      await new Promise((r) => setTimeout(r, 50 * attempt));
      continue;
    }
    throw error instanceof Error ? error : new Error(String(error));
  }
}

export async function ping(db: Kysely<DB>): Promise<void> {
  await sql`SELECT 1`.execute(db);
}
