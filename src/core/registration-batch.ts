/**
 * Which waiting registrations the next grouped write takes (services/device-registrations.ts).
 *
 * - A device already being written by another batch is left waiting: two batches writing one
 *   device at once could commit in either order, and the last registration must win.
 * - At most `maxRounds` registrations of one device: each repeat costs a statement of its own
 *   (a statement cannot update a row twice), written one after another, so a client looping on
 *   one device id would otherwise turn a batch into hundreds of sequential statements and hold
 *   one of the few batch slots every app's registrations share.
 *
 * What is left keeps its order, so a device's registrations are still written in arrival order.
 */
export function takeBatch<T>(
  waiting: readonly T[],
  key: (item: T) => string,
  busy: ReadonlySet<string>,
  maxBatch: number,
  maxRounds: number,
): { batch: T[]; rest: T[] } {
  const batch: T[] = [];
  const rest: T[] = [];
  const taken = new Map<string, number>();
  for (const item of waiting) {
    const k = key(item);
    const n = taken.get(k) ?? 0;
    if (batch.length >= maxBatch || busy.has(k) || n >= maxRounds) {
      rest.push(item);
      continue;
    }
    taken.set(k, n + 1);
    batch.push(item);
  }
  return { batch, rest };
}
