import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis.js';

/**
 * Notices that Redis lost its data. Relay writes a random marker (`<prefix>:epoch`) once; a
 * Redis that restarted without persistence, or was flushed, no longer has it, and with it went
 * every BullMQ job. The first scheduler to write a new marker owns the reconciliation from
 * PostgreSQL (`SET NX`), so several scheduler processes do it once.
 *
 * Redis's own `run_id` (INFO server) changes on every restart, also one that reloaded its data
 * from disk, so it cannot tell a restart that lost the jobs from one that kept them; the marker can.
 */
export class RedisEpoch {
  private seen: string | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  get key(): string {
    return `${this.prefix}:epoch`;
  }

  /** The marker last seen (after the first `check`). */
  get current(): string | undefined {
    return this.seen;
  }

  /**
   * `lost`: the marker was missing and this process wrote the new one: it must reconcile.
   * `same`: nothing happened (or this is the first look at a marker another process wrote).
   * `taken`: the marker was replaced since the last look: another process reconciles.
   */
  async check(): Promise<'lost' | 'same' | 'taken'> {
    const value = await this.redis.get(this.key);
    if (value !== null) {
      const first = this.seen === undefined;
      const changed = value !== this.seen;
      this.seen = value;
      return first || !changed ? 'same' : 'taken';
    }
    const mine = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    if ((await this.redis.set(this.key, mine, 'NX')) === 'OK') {
      this.seen = mine;
      return 'lost';
    }
    this.seen = (await this.redis.get(this.key)) ?? undefined;
    return 'taken';
  }
}
