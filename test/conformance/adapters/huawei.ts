import { startHuaweiMock, type HuaweiMock } from '../../mocks/vendors/huawei.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

/** Huawei Push Kit v1 (providers/huawei.ts) against the Huawei mock (OAuth + messages:send). */
export function huaweiAdapter(): ConformanceAdapter {
  const { m, adapter } = mockLifecycle<HuaweiMock>(
    async () => {
      const mock = await startHuaweiMock();
      const provider = createProvider('huawei', { appId: mock.appId, clientSecret: mock.clientSecret }, context({ huawei: mock.url, huaweiOauth: mock.url }));
      return { mock, provider };
    },
    (mock) => mock.requests.filter((r) => r.path.endsWith('/messages:send')).length,
  );
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;

  return adapter({
    channel: 'huawei',
    ok: () => tok('tok'),
    providerId: () => m().sends.at(-1)?.requestId ?? '(no accepted send recorded)',
    // A request whose only token is dead: 80300007 "all tokens invalid".
    invalid: () => ({ token: tok('invalid'), code: '80300007', evidence: { status: 400, requestId: /^\d+$/ } }),
    retryAfter() {
      // Flow control is HTTP 503 without a body code (HMOS): the code is the status.
      m().setBehavior({ retryAfterSec: 7 });
      return { token: tok('ratelimit'), code: 'HTTP503', retryAfterSec: 7 };
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
          // Partial success: 80100000 with the token in illegal_tokens.
          return { token: tok('invalid'), code: '80100000' };
        case 'retry':
          return { token: tok('ratelimit') };
        case 'failed':
          return undefined;
      }
    },
    batch: { chunkSize: 1000, retryScope: 'request', requestRetryCode: 'HTTP503' },
    payloadTooLarge: {
      code: '80300008',
      local: false,
      why: 'the Huawei provider does not measure the body; Huawei (the mock) refuses it with 80300008',
    },
  });
}
