import { startXiaomiMock, type XiaomiMock } from '../../mocks/vendors/xiaomi.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

/** Xiaomi MiPush (providers/xiaomi.ts) against the Xiaomi mock (`/v3/message/regid`). */
export function xiaomiAdapter(): ConformanceAdapter {
  const { m, adapter } = mockLifecycle<XiaomiMock>(
    async () => {
      const mock = await startXiaomiMock();
      const provider = createProvider('xiaomi', { appSecret: mock.appSecret, packageName: mock.packageName }, context({ xiaomi: mock.url }));
      return { mock, provider };
    },
    (mock) => mock.requests.length,
  );
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;

  return adapter({
    channel: 'xiaomi',
    ok: () => tok('reg'),
    providerId: () => m().sends.at(-1)?.msgId ?? '(no accepted send recorded)',
    invalid: () => ({ token: tok('invalid'), code: 'bad_regids', evidence: { status: 200, traceId: /^Xcm[0-9a-f]+$/ } }),
    retryAfter() {
      // 10027 "app api calls too frequent" (HTTP 200) with the scripted Retry-After.
      m().setBehavior({ retryAfterSec: 7 });
      return { token: tok('ratelimit'), code: '10027', retryAfterSec: 7 };
    },
    authExpiry: { notApplicable: 'Xiaomi authenticates every request with the static AppSecret (`Authorization: key=…`): no token to expire or refresh' },
    batchToken(kind: BatchKind): Scripted | undefined {
      switch (kind) {
        case 'ok':
          return { token: tok('reg') };
        case 'invalid':
          return { token: tok('invalid'), code: 'bad_regids' };
        case 'retry':
          return { token: tok('ratelimit') };
        case 'failed':
          return undefined;
      }
    },
    batch: { chunkSize: 100, retryScope: 'request', requestRetryCode: '10027' },
    payloadTooLarge: {
      code: '10018',
      local: false,
      why: 'Xiaomi publishes no byte limit (docs/providers/xiaomi.md), so the provider cannot check locally; the mock refuses > 4096 bytes with 10018',
    },
  });
}
