import type { Provider } from '../../../providers/types.js';
import { startHonorMock, type HonorMock } from '../../mocks/vendors/honor.js';
import { context, createProvider, once, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';

/** Honor push (providers/honor.ts) against the Honor mock (OAuth + sendMessage). */
export function honorAdapter(): ConformanceAdapter {
  let mock: HonorMock | undefined;
  let provider: Provider | undefined;
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;
  const m = () => mock ?? assertStarted();
  const closeMock = once(async () => mock?.close());

  return {
    channel: 'honor',
    async start() {
      mock = await startHonorMock();
      provider = createProvider(
        'honor',
        { appId: mock.appId, clientId: mock.clientId, clientSecret: mock.clientSecret },
        context({ honor: mock.url, honorOauth: mock.url }),
      );
    },
    get provider() {
      return provider ?? assertStarted();
    },
    sendRequests: () => m().requests.filter((r) => r.path.endsWith('/sendMessage')).length,
    closeMock,
    async close() {
      await provider?.close();
      await closeMock();
    },

    ok: () => tok('tok'),
    providerId: () => m().sends.at(-1)?.requestId ?? '(no accepted send recorded)',
    invalid: () => ({ token: tok('invalid'), code: 'expireTokens', evidence: { status: 200, requestId: /^\d+$/ } }),
    retryAfter() {
      m().setBehavior({ retryAfterSec: 7 });
      return { token: tok('ratelimit'), code: '429', retryAfterSec: 7 };
    },
    authExpiry: {
      arm() {
        m().expireAccessTokens();
        return tok('tok');
      },
      refreshes: () => m().tokensIssued,
      requestsPerToken: 2,
    },
    batchToken(kind: BatchKind): Scripted | undefined {
      switch (kind) {
        case 'ok':
          return { token: tok('tok') };
        case 'invalid':
          return { token: tok('invalid'), code: 'expireTokens' };
        case 'retry':
          // Listed in data.failTokens: Honor gives no reason, the provider retries the token.
          return { token: tok('fail'), code: 'failTokens' };
        case 'failed':
          return undefined;
      }
    },
    batch: { chunkSize: 100, retryScope: 'token' },
    payloadTooLarge: {
      code: '80300008',
      local: false,
      why: 'the Honor provider does not measure the body; Honor (the mock, Huawei rules) refuses it with 80300008',
    },
  };
}

function assertStarted(): never {
  throw new Error('adapter not started');
}
