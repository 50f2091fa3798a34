import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { textArray } from './array-literal.js';
import type { DB } from './schema.js';

/**
 * Keeps `devices.last_seen_at` current from SDK events and self-channel connects without a write
 * per event: touches are collected in memory and flushed as one UPDATE per app every `flushMs`,
 * and a device seen within `resolutionMs` is not written again (the audience filter
 * `lastSeen: {within: "30d"}` needs minutes, not milliseconds).
 */
export class LastSeenWriter {
  private pending = new Map<string, Set<string>>();
  /** When each device was last written by this process, to skip repeats within the resolution. */
  private recent = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly logger: Logger,
    private readonly resolutionMs = 5 * 60_000,
    private readonly flushMs = 1000,
  ) {}

  touch(appId: string, deviceId: string, now = Date.now()): void {
    const key = `${appId}\u0000${deviceId}`;
    const last = this.recent.get(key);
    if (last !== undefined && now - last < this.resolutionMs) return;
    if (this.recent.size > 200_000) this.recent.clear();
    this.recent.set(key, now);
    let set = this.pending.get(appId);
    if (!set) this.pending.set(appId, (set = new Set()));
    set.add(deviceId);
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = (async () => {
      for (const [appId, ids] of batch) {
        // The guard keeps a device another process touched a moment ago from being rewritten.
        await sql`
          UPDATE devices SET last_seen_at = now()
          WHERE app_id = ${appId} AND id = ANY(${textArray([...ids])}::text[])
            AND (last_seen_at IS NULL OR last_seen_at < now() - make_interval(secs => ${this.resolutionMs / 1000}))`
          .execute(this.db)
          .catch((err: Error) => this.logger.warn({ err: err.message }, 'lastSeenAt not written'));
      }
    })();
    await this.flushing;
  }
}
