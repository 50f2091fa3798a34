import type { RedisClient } from './redis.js';
import type { Clock } from './campaigns/clock.js';

/**
 * Quota days: when a vendor answers that the app's daily total is used up (vivo 10070, OPPO 33;
 * docs/quota-days.md), the app skips that vendor until the vendor's day resets. Every worker sees
 * the skip (one Redis key per app and channel, gone once the day is over), so after the first
 * refusal no request is made that day: later deliveries fail `quota` at once, or take the app's
 * `quotaFallback` channel. Nothing waits for midnight.
 *
 * The reset time is kept in the key's value and compared with `clock` (tests move it), the key's
 * own expiry only cleans up.
 */
export class QuotaDays {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  private key(appId: string, channel: string): string {
    return `${this.prefix}:quota-day:${appId}:${channel}`;
  }

  /** When the app may use the channel again, if it is skipping it now. */
  async skippedUntil(appId: string, channel: string): Promise<number | null> {
    const value = await this.redis.get(this.key(appId, channel));
    const until = value === null ? NaN : Number(value);
    return Number.isFinite(until) && until > this.clock.now() ? until : null;
  }

  /** Skips the channel for the app until `until` (ms since the epoch); a later reset wins. */
  async skip(appId: string, channel: string, until: number): Promise<void> {
    const key = this.key(appId, channel);
    const ttlMs = Math.max(1000, Math.ceil(until - Date.now()) + 60_000);
    // Keep the later of two resets (two workers may learn of the quota at once).
    await this.redis.eval(
      "local v = tonumber(redis.call('GET', KEYS[1])) if v == nil or v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end return 1",
      1,
      key,
      String(Math.round(until)),
      String(ttlMs),
    );
  }

  /** Forgets the skip (a new credential may be another vendor app, with a quota of its own). */
  async clear(appId: string, channel: string): Promise<void> {
    await this.redis.del(this.key(appId, channel));
  }
}
