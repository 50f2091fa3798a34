import type { Logger } from 'pino';
import { RELAY_CODES, retry, type Outcome, type PushContent } from '../types.js';
import { expiredOutcome, remainingTtlSeconds } from './expiry.js';
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

/**
 * The outcomes of a send that never reaches the vendor, or undefined when it should go ahead: none
 * for no targets, `retry` once the provider is closed (another process will send), `expired` once
 * the TTL has run out.
 */
export function unsendable(content: Pick<PushContent, 'expiresAt'>, count: number, closedVendor?: string): Outcome[] | undefined {
  if (count === 0) return [];
  if (closedVendor !== undefined) return fill(count, retry({ code: RELAY_CODES.closed, message: `${closedVendor} provider is closed` }));
  if (remainingTtlSeconds(content.expiresAt) <= 0) return fill(count, expiredOutcome(content.expiresAt));
  return undefined;
}
