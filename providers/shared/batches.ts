import type { Logger } from 'pino';
import { retry, type Outcome } from '../types.js';
import type { Limiter } from './limiter.js';

/** Sending many tokens as vendor-sized chunks, outcomes back in target order. */

/** Splits `items` into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk size must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Sends `targets` in chunks of `size` through `limiter` and stitches the per-chunk outcomes back
 * in target order. A chunk that throws (a bug, not a vendor answer) becomes `retry` for its
 * targets, so `Provider.send` keeps its "never throws" promise.
 */
export async function sendInChunks<T>(
  targets: readonly T[],
  size: number,
  limiter: Limiter,
  sendChunk: (chunk: T[]) => Promise<Outcome[]>,
  logger?: Logger,
): Promise<Outcome[]> {
  const chunks = chunk(targets, size);
  const results = await Promise.all(
    chunks.map((c) =>
      limiter(async () => {
        try {
          const outs = await sendChunk(c);
          if (outs.length !== c.length) throw new Error(`chunk answered ${outs.length} outcomes for ${c.length} targets`);
          return outs;
        } catch (err) {
          logger?.error({ err }, 'vendor chunk failed unexpectedly');
          return c.map(() => retry({ code: 'internal', message: (err as Error).message }));
        }
      }),
    ),
  );
  return results.flat();
}

/** The same outcome for each of `n` targets. */
export function fill(n: number, outcome: Outcome): Outcome[] {
  return Array.from({ length: n }, () => outcome);
}
