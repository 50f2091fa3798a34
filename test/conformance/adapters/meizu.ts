import { startMeizuMock, type MeizuMock } from '../../mocks/vendors/meizu.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

/** Meizu Flyme push (providers/meizu.ts) against the Meizu mock (`pushByPushId`). */
export function meizuAdapter(): ConformanceAdapter {
  const { m, adapter } = mockLifecycle<MeizuMock>(
    async () => {
      const mock = await startMeizuMock();
      const provider = createProvider('meizu', { appId: mock.appId, appSecret: mock.appSecret }, context({ meizu: mock.url }));
      return { mock, provider };
    },
    (mock) => mock.requests.length,
  );
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;

  return adapter({
    channel: 'meizu',
    ok: () => tok('pid'),
    providerId: () => String((m().requests.at(-1)?.answer as { msgId?: unknown } | undefined)?.msgId ?? '(no answer recorded)'),
    invalid: () => ({ token: tok('invalid'), code: '110002', evidence: { msgId: /^NS\d+_\d+_3$/ } }),
    retryAfter() {
      // Meizu's own rate-limit code (110010) comes without headers; an HTTP 429 carries Retry-After.
      m().setBehavior({ failFirst: { n: 1, answer: { status: 429, retryAfter: '7', rawBody: 'too many requests' } } });
      return { token: tok('pid'), code: 'HTTP429', retryAfterSec: 7 };
    },
    authExpiry: { notApplicable: 'Meizu signs every request with the static appSecret (md5 sign): no token to expire or refresh' },
    batchToken(kind: BatchKind): Scripted {
      switch (kind) {
        case 'ok':
          return { token: tok('pid') };
        case 'invalid':
          return { token: tok('invalid'), code: '110002' };
        case 'retry':
          return { token: tok('busy'), code: '519' };
        case 'failed':
          return { token: tok('quota'), code: 'quota' };
      }
    },
    batch: { chunkSize: 100, retryScope: 'token' },
    payloadTooLarge: {
      notApplicable:
        'Meizu documents no byte limit for notification messageJson (docs/providers/oppo-vivo-meizu.md; only pass-through content ≤ 2000), ' +
        'and neither the provider nor the mock enforces one: a 5000-byte data map is sent',
    },
  });
}
