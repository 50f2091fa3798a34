import type { RedisClient } from './redis.js';

/**
 * How long one sign of transactional work (a tx job queued, started or finished) holds the bulk
 * lane back. Longer than a single push takes on a busy machine, short enough that a fan-out
 * resumes at full speed soon after the last one.
 */
export const TX_HOLD_MS = 250;
/**
 * The longest a batch that holds leased rows (claimed, or sent and not yet written) waits for its
 * turn: far below the rows' lease (WORKER_LOCK_DURATION × 2), so no other job takes them meanwhile.
 */
export const STEP_MAX_WAIT_MS = 2000;
/** A process reads the shared signal at most this often; its own signs it knows at once. */
const READ_EVERY_MS = 10;

/**
 * "Transactional work is flowing": a signal every process shares through one Redis key, so the
 * bulk lane can give way to it (docs/scaling.md, Isolation). The API sets it when it queues
 * transactional send jobs and the transactional workers when they start and finish one; bulk send
 * workers and the router read it between batches. A sign lasts `holdMs` (the key's TTL holds the
 * end), so a crashed process cannot leave the bulk lane held back. Writes are throttled to a
 * few per hold and reads are cached for a few milliseconds: a busy process pays a Redis command
 * every few milliseconds at most, not one per job. Redis unreachable: no pressure is seen, and the
 * bulk lane runs as before.
 */
export class TxPressure {
  private readonly key: string;
  /** Epoch ms until which this process knows the pressure holds. */
  private known = 0;
  private lastWrite = 0;
  private readAt = 0;
  private reading: Promise<number> | undefined;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    readonly holdMs = TX_HOLD_MS,
  ) {
    this.key = `${prefix}:tx-pressure`;
  }

  /** Transactional work exists now: the bulk lane holds back for `holdMs`. */
  signal(now = Date.now()): void {
    this.known = Math.max(this.known, now + this.holdMs);
    if (now - this.lastWrite < this.holdMs / 4) return;
    this.lastWrite = now;
    this.redis.set(this.key, '1', 'PX', this.holdMs).catch(() => undefined);
  }

  /** Epoch ms until which the bulk lane holds back; in the past when it need not. */
  async until(now = Date.now()): Promise<number> {
    if (this.known > now || now - this.readAt < READ_EVERY_MS) return this.known;
    // The key's remaining time, not a deadline in another machine's clock.
    this.reading ??= this.redis
      .pttl(this.key)
      .catch(() => 0)
      .then((ms) => {
        this.readAt = Date.now();
        if (ms > 0) this.known = Math.max(this.known, this.readAt + ms);
        this.reading = undefined;
        return this.known;
      });
    return this.reading;
  }

  /** Whether transactional work is flowing now. */
  async active(): Promise<boolean> {
    return (await this.until()) > Date.now();
  }
}

/**
 * The bulk lane's admission under pressure: while transactional work flows, at most `underPressure`
 * bulk batches of this process run at once; the others wait (rechecking every `pollMs` at most)
 * until the pressure ends or a running batch finishes. Without pressure it admits everything (the
 * worker's own concurrency is the limit).
 */
export class BulkGate {
  /** Admitted batches, less those waiting in `step`. */
  private running = 0;
  /** Admitted batches waiting in `step`: they go before new ones. */
  private stepping = 0;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly pressure: Pick<TxPressure, 'until'>,
    private readonly underPressure = 1,
    private readonly pollMs = 50,
  ) {}

  /** Waits for a turn; the returned function ends it (call it once; later calls do nothing). */
  async enter(): Promise<() => void> {
    await this.wait(() => this.running + this.stepping < this.underPressure, Infinity, () => this.running++);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.running--;
      for (const wake of this.wakers) wake();
    };
  }

  /**
   * Between two steps of an admitted batch: waits while another admitted batch runs under
   * pressure, at most `maxWaitMs` (the batch holds leased rows: it must not sit on them). It
   * counts as not running while it waits, so that batch can go on and finish, and it goes before
   * batches not yet admitted.
   */
  async step(maxWaitMs = STEP_MAX_WAIT_MS): Promise<void> {
    this.running--;
    this.stepping++;
    await this.wait(() => this.running < this.underPressure, Date.now() + maxWaitMs, () => {
      this.stepping--;
      this.running++;
    });
  }

  /**
   * Waits until there is no pressure, `room()` holds or the deadline passed, then counts the
   * caller in with `take` in the same step as the check (no other waiter can slip in between).
   */
  private async wait(room: () => boolean, deadline: number, take: () => void): Promise<void> {
    for (;;) {
      const until = await this.pressure.until();
      const now = Date.now();
      if (until <= now || room() || now >= deadline) {
        take();
        return;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.wakers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(1, Math.min(until - now, deadline - now, this.pollMs)));
        this.wakers.add(wake);
      });
    }
  }
}
