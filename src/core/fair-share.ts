/**
 * Fairness between apps on the bulk send queues. BullMQ serves a queue first in, first out, so one
 * app's million-device campaign (thousands of jobs queued at once) would stand in front of every
 * other app's pushes until it is sent. Groups with round-robin are BullMQ Pro only; open-source
 * BullMQ has job priorities (lower first, first in first out within one priority;
 * https://docs.bullmq.io/guide/jobs/prioritized). So each bulk send job is queued with a priority
 * that grows with the volume its app (on that channel) queued recently: an app that has just
 * queued little goes ahead of one that has queued much, and apps of similar recent volume share a
 * level and interleave first in, first out. Levels are logarithmic (level k after about 2^k
 * batches), so a campaign's own jobs stay in few levels and a small app needs no more than a
 * dozen levels to overtake a million-device one. Recent volume decays with a half-life, so an
 * app that sent a campaign an hour ago is not penalised now.
 *
 * Pure state; the caller keeps one per producer process (router, campaign scheduler). With several
 * producer processes each weighs only what it queued itself, which is still fair on average.
 */
export class FairShare {
  private readonly recent = new Map<string, { volume: number; at: number }>();

  constructor(
    /** Deliveries that count as one unit of volume (a send batch). */
    private readonly unit: number,
    private readonly halfLifeMs = 60_000,
    private readonly maxKeys = 10_000,
  ) {}

  /**
   * The BullMQ priority (1 = first) of each of `batches` jobs of `key` (app × channel) queued now,
   * given their sizes; records their volume.
   */
  priorities(key: string, sizes: readonly number[], now = Date.now()): number[] {
    const entry = this.recent.get(key);
    let volume = entry ? entry.volume * 0.5 ** ((now - entry.at) / this.halfLifeMs) : 0;
    const out = sizes.map((n) => {
      const level = 1 + Math.floor(Math.log2(1 + volume / this.unit));
      volume += n;
      return Math.min(level, PRIORITY_LIMIT);
    });
    if (!entry && this.recent.size >= this.maxKeys) this.forgetQuiet(now);
    this.recent.set(key, { volume, at: now });
    return out;
  }

  /** Drops the apps whose recent volume has decayed below one unit (bounded memory). */
  private forgetQuiet(now: number): void {
    for (const [k, e] of this.recent) if (e.volume * 0.5 ** ((now - e.at) / this.halfLifeMs) < this.unit) this.recent.delete(k);
    if (this.recent.size >= this.maxKeys) this.recent.clear();
  }
}

/** BullMQ's largest priority (2^21). */
export const PRIORITY_LIMIT = 2 ** 21;
