import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { DB } from './db/schema.js';

/** The `relay_state` row that remembers the marker last written into Redis (migration 0030). */
const STATE_KEY = 'redis_epoch';
import type { RedisClient } from './redis.js';

/**
 * Notices that Redis lost its data. Relay writes a random marker (`<prefix>:epoch`) into Redis and
 * remembers it in PostgreSQL (`relay_state`). A Redis that restarted without persistence, or was
 * flushed, no longer has it, and with it went every BullMQ job. The first scheduler to write a new
 * marker owns the reconciliation from PostgreSQL (`SET NX`), so several scheduler processes do it
 * once.
 *
 * A missing marker alone does not mean a loss: on the very first start against a database there
 * never was one. PostgreSQL tells the two apart: it names a marker only once Relay has run.
 *
 * Redis's own `run_id` (INFO server) changes on every restart, also one that reloaded its data
 * from disk, so it cannot tell a restart that lost the jobs from one that kept them; the marker can.
 */
export class RedisEpoch {
  private seen: string | undefined;
  private recorded: string | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly db: Kysely<DB>,
  ) {}

  get key(): string {
    return `${this.prefix}:epoch`;
  }

  /** The marker last seen (after the first `check`). */
  get current(): string | undefined {
    return this.seen;
  }

  /**
   * `lost`: the marker was missing although PostgreSQL names one, and this process wrote the new
   *   one: Redis lost its data, this process must reconcile.
   * `fresh`: the marker was missing and PostgreSQL never named one (the first start against this
   *   database): this process wrote it; reconciling finds nothing to do, nothing was lost.
   * `same`: nothing happened (or this is the first look at a marker another process wrote).
   * `taken`: the marker was replaced since the last look: another process reconciles.
   */
  async check(): Promise<'lost' | 'fresh' | 'same' | 'taken'> {
    const value = await this.redis.get(this.key);
    if (value !== null) {
      const first = this.seen === undefined;
      const changed = value !== this.seen;
      this.seen = value;
      // A Relay that ran before PostgreSQL remembered markers (or whose write below failed).
      if (this.recorded !== value) await this.record(value, false);
      return first || !changed ? 'same' : 'taken';
    }
    const mine = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    if ((await this.redis.set(this.key, mine, 'NX')) === 'OK') {
      this.seen = mine;
      const before = await this.db
        .selectFrom('relay_state')
        .select('value')
        .where('key', '=', STATE_KEY)
        .executeTakeFirst();
      await this.record(mine, true);
      return before ? 'lost' : 'fresh';
    }
    this.seen = (await this.redis.get(this.key)) ?? undefined;
    return 'taken';
  }

  /** Remembers `value` in PostgreSQL; `replace`: over another one (this process wrote `value`). */
  private async record(value: string, replace: boolean): Promise<void> {
    await this.db
      .insertInto('relay_state')
      .values({ key: STATE_KEY, value })
      .onConflict((oc) => (replace ? oc.column('key').doUpdateSet({ value, updated_at: sql`now()` }) : oc.column('key').doNothing()))
      .execute();
    this.recorded = value;
  }
}
