/**
 * The lifecycle every mock-backed conformance adapter (test/conformance/adapters/) shares: start
 * the mock and the provider once, expose the provider, count send requests, close both
 * idempotently. The adapter supplies how to start and how to count; the rest of its answers
 * (tokens, scripted failures, what does not apply) stay in its own file.
 */
import type { Provider } from '../../providers/types.js';
import { once, type ConformanceAdapter } from '../conformance/harness.js';

type Lifecycle = 'start' | 'provider' | 'sendRequests' | 'closeMock' | 'close';

export interface MockLifecycle<M> {
  /** The started mock; throws before `start()`. */
  m(): M;
  /** The adapter: `rest` plus start / provider / sendRequests / closeMock / close. */
  adapter(rest: Omit<ConformanceAdapter, Lifecycle>): ConformanceAdapter;
}

/**
 * @param start starts the mock (ephemeral port) and creates the provider against it.
 * @param sendRequests how many send requests the mock has received (not token fetches); throws before `start()`.
 */
export function mockLifecycle<M extends { close(): Promise<unknown> }>(
  start: () => Promise<{ mock: M; provider: Provider }>,
  sendRequests: (mock: M) => number,
): MockLifecycle<M> {
  let mock: M | undefined;
  let provider: Provider | undefined;
  const m = () => mock ?? notStarted();
  const closeMock = once(async () => {
    await mock?.close();
  });
  return {
    m,
    adapter: (rest) => ({
      ...rest,
      async start() {
        ({ mock, provider } = await start());
      },
      get provider() {
        return provider ?? notStarted();
      },
      sendRequests: () => sendRequests(m()),
      closeMock,
      async close() {
        await provider?.close();
        await closeMock();
      },
    }),
  };
}

function notStarted(): never {
  throw new Error('adapter not started');
}
