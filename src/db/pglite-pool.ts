import type { PGlite } from '@electric-sql/pglite';
import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';

/**
 * Presents one embedded PGlite instance as the pool Kysely's PostgresDialect expects, so the
 * embedded default and a real PostgreSQL share one dialect, one compiler and one migration path.
 * PGlite is a single connection: `connect()` hands it out to one holder at a time, which keeps a
 * transaction's statements together. (kysely-pglite 0.6 cannot load with Kysely 0.29: it imports
 * `Migrator` from the package root, which 0.29 moved to `kysely/migration`.)
 */
export function pglitePool(pglite: PGlite): PostgresPool {
  let tail: Promise<void> = Promise.resolve();

  const client = {
    async query<R>(sqlText: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
      const res = await pglite.query<R>(sqlText, parameters as unknown[]);
      const command = /^\s*(\w+)/.exec(sqlText)?.[1]?.toUpperCase() ?? 'SELECT';
      return {
        command: command as PostgresQueryResult<R>['command'],
        rowCount: res.affectedRows ?? res.rows.length,
        rows: res.rows,
      };
    },
    processID: 1,
  };

  return {
    options: {},
    async connect(): Promise<PostgresPoolClient> {
      let release!: () => void;
      const turn = new Promise<void>((r) => (release = r));
      const prev = tail;
      tail = prev.then(() => turn);
      await prev;
      return { ...client, release: () => release() } as unknown as PostgresPoolClient;
    },
    async end() {
      await pglite.close();
    },
  };
}
