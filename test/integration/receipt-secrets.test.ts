import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { migrationsFor } from '../../migrations/index.js';
import { isSealed } from '../../src/core/secrets.js';
import { AppsRepo } from '../../src/db/apps-repo.js';
import type { DB } from '../../src/db/schema.js';
import { Isolation, PG_URL, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

/**
 * Receipt secrets (the per-app secret in a vendor's receipt callback URL) are sealed at rest with
 * CREDENTIALS_KEY, like provider credentials; migration 0031 seals the rows written before it.
 */
const KEY = Buffer.alloc(32, 7);

let t: TestRelay;
before(async () => {
  t = await startTestRelay({ ROLES: 'api' });
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
});

test("a new app's receipt secret is sealed in its row; the callback URL Relay gives out still authenticates", async () => {
  const { appId, api } = await newApp(t);
  const secret = await t.relay.ctx.repos.apps.receiptSecret(appId);
  assert.ok(secret && secret.length >= 24);
  const raw = await sql<{ receipt_secret: string }>`SELECT receipt_secret FROM ${sql.table(`${t.iso.schema}.apps`)} WHERE id = ${appId}`.execute(t.relay.ctx.db);
  const stored = raw.rows[0]!.receipt_secret;
  assert.ok(isSealed(stored), 'stored sealed');
  assert.ok(!stored.includes(secret), 'no plaintext in the row');

  // The URL in the credential view carries the secret, and the receipt route accepts it.
  const put = await api('PUT', `/v1/apps/${appId}/credentials/huawei`, { appId: '1', clientSecret: 'x'.repeat(32) });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const url = new URL(put.body.receiptUrl as string);
  assert.equal(url.searchParams.get('secret'), secret);
  const body = JSON.stringify({ statuses: [{ token: 'never-sent', status: 0, biTag: 'x', requestId: '1' }] });
  const post = (q: string) => fetch(`${t.base}${url.pathname}${q}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.notEqual((await post(url.search)).status, 401, 'the right secret is accepted');
  assert.equal((await post('?secret=wrong')).status, 401);
  assert.equal((await post(`?secret=${encodeURIComponent(stored)}`)).status, 401, 'the sealed form is no secret');

  // A ciphertext moved onto another app's row does not open there (it is bound to its app).
  const other = await newApp(t);
  await sql`UPDATE ${sql.table(`${t.iso.schema}.apps`)} SET receipt_secret = ${stored} WHERE id = ${other.appId}`.execute(t.relay.ctx.db);
  assert.equal(await t.relay.ctx.repos.apps.receiptSecret(other.appId), null);
});

test('migration 0031 seals the plaintext receipt secrets of existing apps, and refuses to run without the key', async () => {
  const iso = new Isolation();
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${iso.schema}` });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql.raw(`CREATE SCHEMA ${iso.schema}`).execute(db);
    const migrator = (key?: Buffer) => {
      const migrations = migrationsFor(key ? { credentialsKey: key } : {});
      return new Migrator({ db, provider: { getMigrations: async () => migrations }, migrationTableSchema: iso.schema });
    };
    assert.equal((await migrator(KEY).migrateTo('0030_relay_state')).error, undefined);
    await sql`INSERT INTO apps (id, name, receipt_secret) VALUES ('old-a', 'a', 'plain-secret-of-a-0123456789'), ('old-b', 'b', 'plain-secret-of-b-0123456789')`.execute(db);

    const without = await migrator().migrateToLatest();
    assert.match(String(without.error), /no CREDENTIALS_KEY/, 'a plaintext row is never left behind silently');

    assert.equal((await migrator(KEY).migrateToLatest()).error, undefined);
    const rows = await sql<{ id: string; receipt_secret: string }>`SELECT id, receipt_secret FROM apps ORDER BY id`.execute(db);
    for (const r of rows.rows) {
      assert.ok(isSealed(r.receipt_secret), `${r.id} sealed`);
      assert.ok(!r.receipt_secret.includes('plain-secret'), `${r.id}: no plaintext left`);
    }
    const apps = new AppsRepo(db, KEY);
    assert.equal(await apps.receiptSecret('old-a'), 'plain-secret-of-a-0123456789', 'the URLs vendors hold stay valid');
    assert.equal(await apps.receiptSecret('old-b'), 'plain-secret-of-b-0123456789');
    assert.equal(await new AppsRepo(db, Buffer.alloc(32, 8)).receiptSecret('old-a'), null, 'another key opens nothing');
  } finally {
    await db.destroy();
    await iso.drop();
  }
});
