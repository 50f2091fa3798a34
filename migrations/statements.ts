import { sql, type Kysely } from 'kysely';

/**
 * Runs a DDL script one statement at a time: PGlite's extended-protocol `query` accepts a single
 * statement, and one code path keeps PostgreSQL and PGlite migrations identical.
 */
export async function runStatements(db: Kysely<unknown>, script: string): Promise<void> {
  for (const stmt of script.split(/;\s*\n/).map((s) => s.trim()).filter(Boolean)) {
    await sql.raw(stmt).execute(db);
  }
}
