import { sql, type Kysely } from 'kysely';

/**
 * Runs `fn` in a transaction with planner methods switched off for its statements only. Relay's
 * hot statements have one right plan (a key walk, an index probe per id) that the planner misses
 * without fresh statistics: a young table, autovacuum behind, or PGlite, which has none.
 */
export function withPlanner<DB, T>(
  db: Kysely<DB>,
  off: readonly ('enable_seqscan' | 'enable_bitmapscan' | 'enable_sort')[],
  fn: (tx: Kysely<DB>) => Promise<T>,
): Promise<T> {
  return db.transaction().execute(async (tx) => {
    await sql`SELECT ${sql.join(off.map((setting) => sql`set_config(${setting}, 'off', true)`))}`.execute(tx);
    return fn(tx);
  });
}
