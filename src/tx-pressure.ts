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
 * The longest a read of the signal may take: a slower answer counts as no pressure. The shared
 * connection retries forever and queues commands while Redis is away (src/redis.ts), so an
 * unbounded read would park the bulk lane for the whole outage, past its rows' lease.
 */
export const READ_TIMEOUT_MS = 25;
/** After a read timed out or failed, the next one waits this long (no pile of pending reads). */
const READ_BACKOFF_MS = 250;

/**
 * "The transactional lane is suffering": a signal every process shares through one Redis key, so
 * the bulk lane can give way to it (docs/scaling.md, Isolation). The transactional workers set it
 * when a job they pick waited in its queue longer than TX_PRESSURE_AFTER, or took longer end to
 * end; bulk send workers and the router read it between batches. A sign lasts `holdMs` (the
 * key's TTL holds the end), so a crashed process cannot leave the bulk lane held back. Writes are throttled to a
 * few per hold and reads are cached for a few milliseconds: a busy process pays a Redis command
 * every few milliseconds at most, not one per job. Redis unreachable: no pressure is seen, and the
 * bulk lane runs as before: nothing is sent or read while the connection is not ready (no command
 * waits in ioredis's offline queue), and a read that does not answer within READ_TIMEOUT_MS counts
 * as no pressure.
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
    // Not connected: the write would wait in the offline queue and land late (or pile up).
    if (this.redis.status !== 'ready') return;
    this.lastWrite = now;
    this.redis.set(this.key, '1', 'PX', this.holdMs).catch(() => undefined);
  }

  /** Epoch ms until which the bulk lane holds back; in the past when it need not. */
  async until(now = Date.now()): Promise<number> {
    if (this.known > now || now - this.readAt < READ_EVERY_MS) return this.known;
    // Not connected: nothing to wait for (a command would sit in the offline queue).
    if (this.redis.status !== 'ready') return this.known;
    this.reading ??= this.read();
    return this.reading;
  }

  /** Reads the key's remaining time (not a deadline in another machine's clock); null: no answer in time. */
  private async read(): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), READ_TIMEOUT_MS)));
    const ms = await Promise.race([this.redis.pttl(this.key).catch(() => null), late]);
    clearTimeout(timer);
    this.readAt = Date.now() + (ms === null ? READ_BACKOFF_MS : 0);
    if (ms !== null && ms > 0) this.known = Math.max(this.known, Date.now() + ms);
    this.reading = undefined;
    return this.known;
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

  /** Callers held back right now (at admission or between steps). */
  get waiting(): number {
    return this.wakers.size;
  }

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
      // The deadline and the room are checked before the pressure is read, and again after.
      if (room() || Date.now() >= deadline) {
        take();
        return;
      }
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
