import { startHonorMock, type HonorMock } from '../../mocks/vendors/honor.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

/** Honor push (providers/honor.ts) against the Honor mock (OAuth + sendMessage). */
export function honorAdapter(): ConformanceAdapter {
  const { m, adapter } = mockLifecycle<HonorMock>(
    async () => {
      const mock = await startHonorMock();
      const provider = createProvider(
        'honor',
        { appId: mock.appId, clientId: mock.clientId, clientSecret: mock.clientSecret },
        context({ honor: mock.url, honorOauth: mock.url }),
      );
      return { mock, provider };
    },
    (mock) => mock.requests.filter((r) => r.path.endsWith('/sendMessage')).length,
  );
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;

  return adapter({
    channel: 'honor',
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
  });
}
