import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql, type LogEvent } from 'kysely';
import pg from 'pg';
import { migrate } from '../../src/db/database.js';
import { DeliveriesRepo } from '../../src/db/deliveries-repo.js';
import { pglitePool } from '../../src/db/pglite-pool.js';
import type { DB } from '../../src/db/schema.js';
import { Isolation, PG_URL } from '../helpers/harness.js';

/**
 * The send path's statements are one round trip each (no transaction around a planner switch),
 * and each still probes `deliveries` by its key on a table the planner knows nothing about: never
 * analysed and grown to 60,000 rows (PGlite has no autovacuum; a young PostgreSQL table neither).
 */
const iso = new Isolation();
after(() => iso.drop());

async function check(kind: 'pglite' | 'postgres') {
  const logged: LogEvent['query'][] = [];
  const log = (e: LogEvent) => void logged.push(e.query);
  let db: Kysely<DB>;
  let schema = 'public';
  if (kind === 'pglite') {
    const pglite = await PGlite.create({ parsers: { 20: (v: string) => v } });
    db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: pglitePool(pglite) }), log });
  } else {
    schema = iso.schema;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await admin.end();
    db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${schema}` }) }), log });
  }
  try {
    await migrate(db, schema);
    await sql`INSERT INTO deliveries (message_id, app_id, device_id, platform, channel, token, status)
              SELECT 'm' || (i / 1000), 'a', 'd' || i, 'ios', 'apns', 't' || i, 'queued' FROM generate_series(1::int, 60000::int) i`.execute(db);
    const ids = (await sql<{ id: string }>`SELECT id::text AS id FROM deliveries WHERE message_id = 'm7' ORDER BY id LIMIT 300`.execute(db)).rows.map((r) => String(r.id));
    const repo = new DeliveriesRepo(db);
    const calls: [string, () => Promise<unknown>][] = [
      ['leasedToMe', () => repo.leasedToMe(ids)],
      ['claim', () => repo.claim(ids, 60_000, {})],
      ['leasedUntil', () => repo.leasedUntil(ids)],
      ['writeOutcomes', () => repo.writeOutcomes(ids.map((id, i) => ({ id, status: i % 2 ? 'sent' : 'invalid', error: i % 2 ? null : { code: 'bad_token', message: 'x' }, providerId: `p${i}`, nextAttemptAt: null })), { countAttempt: false })],
    ];
    for (const [name, call] of calls) {
      logged.length = 0;
      await call();
      assert.equal(logged.length, 1, `${kind}: ${name} is one round trip (${logged.map((q) => q.sql.slice(0, 40)).join(' | ')})`);
      const q = logged[0]!;
      logged.length = 0;
      const text = await explainWithParams(db, q.sql, q.parameters);
      assert.match(text, /on deliveries/, `${kind}: ${name}'s plan reads deliveries`);
      assert.doesNotMatch(text, /Seq Scan on deliveries/, `${kind}: ${name} reads deliveries by its key:\n${text}`);
    }
    const done = await sql<{ n: string }>`SELECT count(*) AS n FROM deliveries WHERE id = ANY(${`{${ids.join(',')}}`}::bigint[]) AND status IN ('sent', 'invalid')`.execute(db);
    assert.equal(Number(done.rows[0]!.n), ids.length);
  } finally {
    await db.destroy();
  }
}

/** EXPLAIN of a logged statement, with its parameters (no execution: a data-modifying CTE stays unrun). */
async function explainWithParams(db: Kysely<DB>, text: string, parameters: readonly unknown[]): Promise<string> {
  const res = await db.executeQuery<Record<string, string>>({ sql: `EXPLAIN ${text}`, parameters, query: { kind: 'RawNode' } as never, queryId: { queryId: 'explain' } } as never);
  return res.rows.map((r) => Object.values(r)[0]).join('\n');
}

test('send-path statements are one round trip each and probe deliveries by key on never-analysed PGlite', () => check('pglite'));
test('send-path statements are one round trip each and probe deliveries by key on never-analysed PostgreSQL', () => check('postgres'));
