/**
 * One hashed timer wheel for every connection's deadline (connect timeout, dead detection), so
 * 100,000 connections cost one periodic sweep instead of 100,000 timers.
 *
 * Deadlines are lazy: an entry sits in the bucket of the deadline it had when it was scheduled.
 * Activity only moves the *real* deadline later (the caller keeps it, e.g. lastActivity + limit);
 * when the bucket comes due, `onDue` re-checks and returns the real deadline to re-arm, or -1 to
 * drop the entry. So a packet costs one field write, and an entry is re-bucketed at most about
 * once per idle period. Moving a deadline *earlier* is an explicit `schedule()`.
 */
export interface WheelEntry {
  /** The tick the entry is filed under; -1 when not scheduled. Owned by the wheel. */
  wheelTick: number;
}

export class TimerWheel<T extends WheelEntry> {
  private readonly buckets: Set<T>[];
  private readonly mask: number;
  /** The last tick fully processed. */
  private tick: number;
  private count = 0;

  /**
   * @param granularityMs length of a tick
   * @param onDue called for a due entry (already unscheduled); return the next deadline in ms to
   *   re-arm it, or -1 to leave it unscheduled
   * @param slots bucket count, rounded up to a power of two (a round spans slots × granularity)
   */
  constructor(
    readonly granularityMs: number,
    private readonly onDue: (entry: T, now: number) => number,
    now: number,
    slots = 4096,
  ) {
    let n = 1;
    while (n < slots) n <<= 1;
    this.buckets = Array.from({ length: n }, () => new Set<T>());
    this.mask = n - 1;
    this.tick = Math.floor(now / granularityMs);
  }

  get size(): number {
    return this.count;
  }

  /** Files `entry` to fire at the first sweep at or after `deadlineMs` (never in a past tick). */
  schedule(entry: T, deadlineMs: number): void {
    let t = Math.ceil(deadlineMs / this.granularityMs);
    if (t <= this.tick) t = this.tick + 1;
    if (entry.wheelTick === t) return;
    if (entry.wheelTick >= 0) this.buckets[entry.wheelTick & this.mask]!.delete(entry);
    else this.count++;
    entry.wheelTick = t;
    this.buckets[t & this.mask]!.add(entry);
  }

  /** Files `entry` only if that is earlier than where it is now (or it is not scheduled). */
  scheduleEarlier(entry: T, deadlineMs: number): void {
    const t = Math.max(Math.ceil(deadlineMs / this.granularityMs), this.tick + 1);
    if (entry.wheelTick < 0 || t < entry.wheelTick) this.schedule(entry, deadlineMs);
  }

  unschedule(entry: T): void {
    if (entry.wheelTick < 0) return;
    this.buckets[entry.wheelTick & this.mask]!.delete(entry);
    entry.wheelTick = -1;
    this.count--;
  }

  /** Runs every entry due at or before `now`. Returns how many came due. */
  advance(now: number): number {
    const target = Math.floor(now / this.granularityMs);
    if (target <= this.tick) return 0;
    // After a long stall, visiting each bucket once is enough: every entry ≤ target fires.
    const from = Math.max(this.tick + 1, target - this.mask);
    this.tick = target;
    let fired = 0;
    for (let t = from; t <= target; t++) {
      const bucket = this.buckets[t & this.mask]!;
      if (bucket.size === 0) continue;
      for (const entry of bucket) {
        if (entry.wheelTick > target) continue; // a later round, same bucket
        bucket.delete(entry);
        entry.wheelTick = -1;
        this.count--;
        fired++;
        const next = this.onDue(entry, now);
        if (next >= 0 && entry.wheelTick < 0) this.schedule(entry, next);
      }
    }
    return fired;
  }
}
