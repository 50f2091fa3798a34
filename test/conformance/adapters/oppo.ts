import { startOppoMock, type OppoMock } from '../../mocks/vendors/oppo.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

const SEND_PATHS = ['/server/v1/message/notification/unicast', '/server/v1/message/notification/unicast_batch'];

/** OPPO push (providers/oppo.ts) against the OPPO mock (auth + unicast / unicast_batch). */
export function oppoAdapter(): ConformanceAdapter {
  const sendsOf = (mock: OppoMock) => mock.requests.filter((r) => SEND_PATHS.includes(r.path));
  const { m, adapter } = mockLifecycle<OppoMock>(
    async () => {
      const mock = await startOppoMock();
      const provider = createProvider('oppo', { appKey: mock.appKey, masterSecret: mock.masterSecret }, context({ oppo: mock.url }));
      return { mock, provider };
    },
    (mock) => sendsOf(mock).length,
  );
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;
  const sends = () => sendsOf(m());

  return adapter({
    channel: 'oppo',
    ok: () => tok('reg'),
    // `data.messageId` of the unicast answer.
    providerId: () => String((sends().at(-1)?.answer as { data?: { messageId?: unknown } } | undefined)?.data?.messageId ?? '(no answer recorded)'),
    invalid: () => ({ token: tok('invalid'), code: '10000', evidence: { status: 200, body: { code: 10000, message: 'registration_id格式不正确' } } }),
    retryAfter() {
      // OPPO's flow-control codes carry no Retry-After; an HTTP 429 from its front end does.
      m().setBehavior({ failFirst: { n: 1, answer: { status: 429, retryAfter: '7', rawBody: 'too many requests' } } });
      return { token: tok('reg'), code: 'HTTP429', retryAfterSec: 7 };
    },
    authExpiry: {
      arm() {
        m().expireTokens();
        return tok('reg');
      },
      refreshes: () => m().authCount,
      requestsPerToken: 2,
    },
    batchToken(kind: BatchKind): Scripted {
      switch (kind) {
        case 'ok':
          return { token: tok('reg') };
        case 'invalid':
          return { token: tok('invalid'), code: '10000' };
        case 'retry':
          return { token: tok('busy'), code: '-2' };
        case 'failed':
          // Per-target daily limit of this device.
          return { token: tok('quota'), code: 'quota' };
      }
    },
    batch: { chunkSize: 1000, retryScope: 'token' },
    payloadTooLarge: { code: 'PayloadTooLarge', local: true },
  });
}
