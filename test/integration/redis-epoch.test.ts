import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startRelay, type Relay } from '../../src/relay.js';
import { Isolation, REDIS_URL } from '../helpers/harness.js';

/**
 * The sweeper reconciles from PostgreSQL when Redis lost its data, and says so with a warning. A
 * fresh install (no marker in Redis, none ever recorded in PostgreSQL) must not raise that alarm;
 * a restart with Redis intact says nothing; a Redis that lost the marker PostgreSQL remembers does.
 */
const iso = new Isolation();
const redis = new Redis(REDIS_URL);
after(async () => {
  redis.disconnect();
  await iso.drop();
});

interface Line {
  level: number;
  msg: string;
}

/** Starts a scheduler Relay on the test's schema and prefix; resolves once its first sweep ended. */
async function start(): Promise<{ relay: Relay; lines: Line[] }> {
  const lines: Line[] = [];
  const capture = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  const config = loadConfig(iso.env({ ROLES: 'api,scheduler', LOG_LEVEL: 'info' }));
  const relay = await startRelay(config, createLogger('info', 'relay', capture), () => undefined);
  await relay.sweeper!.idle();
  return { relay, lines };
}

const about = (lines: Line[], re: RegExp) => lines.filter((l) => re.test(l.msg));

test('a fresh install does not warn that Redis lost its jobs; a restart keeps quiet; a real loss warns', async () => {
  // 1. The very first start against this database and Redis.
  const first = await start();
  assert.deepEqual(about(first.lines, /lost its jobs|no epoch marker/), [], 'no loss reported on a fresh install');
  assert.equal(first.lines.filter((l) => l.level >= 40).length, 0, `no warning at all: ${JSON.stringify(first.lines.filter((l) => l.level >= 40))}`);
  const fresh = about(first.lines, /first start/);
  assert.equal(fresh.length, 1);
  assert.equal(fresh[0]!.level, 30, 'said at info level');
  const marker = await redis.get(`${iso.prefix}:epoch`);
  assert.ok(marker, 'the marker is in Redis');
  const { db } = first.relay.ctx;
  const recorded = await sql<{ value: string }>`SELECT value FROM ${sql.table(`${iso.schema}.relay_state`)} WHERE key = 'redis_epoch'`.execute(db);
  assert.equal(recorded.rows[0]?.value, marker, 'PostgreSQL remembers the marker');
  await first.relay.stop();

  // 2. Restarted with Redis intact: nothing to say.
  const second = await start();
  await second.relay.stop();
  assert.deepEqual(about(second.lines, /lost its jobs|first start|no epoch marker/), []);
  assert.equal(await redis.get(`${iso.prefix}:epoch`), marker, 'the marker is kept');

  // 3. Redis came back without the marker (restarted empty: only this test's key is removed here).
  await redis.del(`${iso.prefix}:epoch`);
  const third = await start();
  await third.relay.stop();
  const lost = about(third.lines, /lost its jobs/);
  assert.equal(lost.length, 1, 'the loss is reported once');
  assert.equal(lost[0]!.level, 40, 'as a warning');
  assert.deepEqual(about(third.lines, /first start/), []);
});
