import { sql, type Kysely } from 'kysely';
import { runStatements } from './statements.js';

/**
 * `deliveries` becomes a table partitioned by day, so that retention drops a whole day's
 * partition (a file unlink) instead of deleting rows one by one (WAL, vacuum and bloat for every
 * row): https://www.postgresql.org/docs/current/ddl-partitioning.html#DDL-PARTITIONING-OVERVIEW
 *
 * The partition key is the delivery id itself, which now carries its day: the UTC day number
 * (days since 1970-01-01) in the bits above 2^37, a sequence below. Every lookup by id (claims,
 * outcomes, receipts, the open-id list) therefore still names its partition and stays one index
 * probe, and the primary key (id) stays a valid key of the partitioned table. Ids stay below
 * 2^53 until the year 2149, so JSON clients and PGlite (which returns bigint as a JS number) read
 * them exactly.
 *
 * The day is the one of the delivery's message (the router passes it), so all deliveries of a
 * message live in one partition. That is what keeps (message_id, device_id) unique: a unique
 * index of a partitioned table must contain the partition key, so it is an index of each
 * partition instead, and since a message never spans two partitions it is unique overall.
 * Inserts that may meet an earlier run's rows use ON CONFLICT DO NOTHING without a target,
 * which checks the partition's unique indexes.
 *
 * The existing table is kept as it is, as the partition `deliveries_legacy` for every id up to
 * the end of today (old ids are small, so they all sort there). It takes today's new rows too:
 * a message created earlier today, before the upgrade, has its older deliveries there, and its
 * later ones must meet them in the same partition for (message_id, device_id) to stay unique.
 * Day partitions start tomorrow; the legacy one is dropped once today falls out of the retention. Other indexes of the old table (whoever added them) are recreated on the parent
 * under their own names, which attaches the legacy table's copies and builds them on new
 * partitions. No index names a column the hot path updates (migration 0004): partitioning
 * changes none of that.
 *
 * Messages, idempotency keys and vendor request ids expire with their day's deliveries: they get
 * BRIN indexes on created_at (a few pages, and nearly free to maintain on an append-only table)
 * so that the retention finds their old rows without a scan.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows: indexes } = await sql<{ name: string; def: string }>`
    SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
    FROM pg_index i
    WHERE i.indrelid = 'deliveries'::regclass AND NOT i.indisunique AND NOT i.indisprimary`.execute(db);
  const { rows: uniques } = await sql<{ name: string }>`
    SELECT conname AS name FROM pg_constraint
    WHERE conrelid = 'deliveries'::regclass AND contype IN ('p', 'u')`.execute(db);
  await runStatements(db, `
    ALTER TABLE deliveries ALTER COLUMN id DROP IDENTITY IF EXISTS;
    ALTER TABLE deliveries RENAME TO deliveries_legacy;
  `);
  for (const u of uniques) await sql.raw(`ALTER TABLE deliveries_legacy RENAME CONSTRAINT ${u.name} TO ${legacyName(u.name)}`).execute(db);
  for (const ix of indexes) await sql.raw(`ALTER INDEX ${ix.name} RENAME TO ${legacyName(bare(ix.name))}`).execute(db);
  await runStatements(db, `
    CREATE SEQUENCE delivery_id_seq;
    CREATE TABLE deliveries (
      LIKE deliveries_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS,
      PRIMARY KEY (id)
    ) PARTITION BY RANGE (id);
    ALTER TABLE deliveries ALTER COLUMN id SET DEFAULT ((floor(extract(epoch FROM now()) / 86400)::bigint << 37) | (nextval('delivery_id_seq') & 137438953471));
    ALTER TABLE deliveries ATTACH PARTITION deliveries_legacy
      FOR VALUES FROM (MINVALUE) TO ((floor(extract(epoch FROM now()) / 86400)::bigint + 1) << 37);
  `);
  // pg_get_indexdef names the table as it was called then (`deliveries`): now the parent.
  for (const ix of indexes) await sql.raw(ix.def).execute(db);
  // The database's day, as the legacy bound above used: a Node clock a little off around midnight
  // must not make a day's partition overlap the legacy one.
  const { rows: now } = await sql<{ day: number }>`SELECT floor(extract(epoch FROM now()) / 86400)::int AS day`.execute(db);
  const today = now[0]!.day;
  for (let day = today + 1; day <= today + 7; day++) {
    const name = `deliveries_${new Date(day * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '')}`;
    await runStatements(db, `
      CREATE TABLE IF NOT EXISTS ${name} PARTITION OF deliveries
        FOR VALUES FROM (${BigInt(day) << 37n}) TO (${BigInt(day + 1) << 37n}) WITH (fillfactor = 50);
      CREATE UNIQUE INDEX IF NOT EXISTS ${name}_message_device ON ${name} (message_id, device_id);
    `);
  }
  await runStatements(db, `
    CREATE INDEX messages_created_brin ON messages USING brin (created_at);
    CREATE INDEX idempotency_keys_created_brin ON idempotency_keys USING brin (created_at);
    CREATE INDEX provider_requests_created_brin ON provider_requests USING brin (created_at);
  `);
}

function bare(name: string): string {
  return name.includes('.') ? name.slice(name.lastIndexOf('.') + 1) : name;
}

function legacyName(name: string): string {
  return `${name.replace(/^deliveries_?/, 'deliveries_legacy_')}`.slice(0, 63);
}

/** Not reversible in place: the day partitions would have to be merged back into one table. */
export async function down(): Promise<void> {
  throw new Error('0035_partitioned_deliveries cannot be reverted');
}
