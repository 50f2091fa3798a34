/**
 * Concurrency limits: one FIFO counting semaphore (APNs holds its permits across a callback) and
 * the limiter every other provider wraps its requests in, built on it.
 */

/**
 * A FIFO counting semaphore (fair between concurrent `send()` calls). The fast path matters to
 * APNs, which takes a permit per token: a free permit is taken synchronously, with no promise.
 */
export class Semaphore {
  private available: number;
  private readonly waiters: Array<(() => void) | undefined> = [];
  private head = 0;

  constructor(readonly permits: number) {
    if (!(permits >= 1)) throw new RangeError('a semaphore needs at least one permit');
    this.available = permits;
  }

  get inUse(): number {
    return this.permits - this.available;
  }

  /** Callers waiting for a permit. */
  get waiting(): number {
    return this.waiters.length - this.head;
  }

  /** Takes a permit: synchronously when one is free (no promise), else in FIFO order. */
  acquire(): Promise<void> | undefined {
    if (this.available > 0) {
      this.available--;
      return undefined;
    }
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters[this.head];
    if (next === undefined) {
      this.available++;
      return;
    }
    this.waiters[this.head++] = undefined;
    if (this.head === this.waiters.length) {
      this.waiters.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
    next(); // the permit passes straight to the next waiter
  }
}

/** A per-instance limiter: at most `max` tasks run at once, the rest wait in FIFO order. */
export interface Limiter {
  <T>(task: () => Promise<T>): Promise<T>;
  readonly active: number;
  readonly pending: number;
}

export function createLimiter(max: number): Limiter {
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`limiter size must be a positive integer, got ${max}`);
  const permits = new Semaphore(max);
  const start = <T>(task: () => Promise<T>): Promise<T> => {
    let p: Promise<T>;
    try {
      p = task();
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.finally(() => permits.release());
  };
  const run = (<T>(task: () => Promise<T>): Promise<T> => {
    const wait = permits.acquire();
    return wait ? wait.then(() => start(task)) : start(task);
  }) as Limiter;
  Object.defineProperties(run, {
    active: { get: () => permits.inUse },
    pending: { get: () => permits.waiting },
  });
  return run;
}
