import { startVivoMock, type VivoMock } from '../../mocks/vendors/vivo.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

const SEND_PATHS = ['/message/send', '/message/saveListPayload', '/message/pushToList'];

/** vivo push (providers/vivo.ts) against the vivo mock (auth + send / saveListPayload + pushToList). */
export function vivoAdapter(): ConformanceAdapter {
  const sendsOf = (mock: VivoMock) => mock.requests.filter((r) => SEND_PATHS.includes(r.path));
  const { m, adapter } = mockLifecycle<VivoMock>(
    async () => {
      const mock = await startVivoMock();
      const provider = createProvider('vivo', { appId: mock.appId, appKey: mock.appKey, appSecret: mock.appSecret }, context({ vivo: mock.url }));
      return { mock, provider };
    },
    (mock) => sendsOf(mock).length,
  );
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;
  const sends = () => sendsOf(m());

  return adapter({
    channel: 'vivo',
    ok: () => tok('reg'),
    // `taskId` of the /message/send answer.
    providerId: () => String((sends().at(-1)?.answer as { taskId?: unknown } | undefined)?.taskId ?? '(no answer recorded)'),
    invalid() {
      const token = tok('invalid');
      return { token, code: '10302', evidence: { result: 10302, status: 2, userid: token } };
    },
    retryAfter() {
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
    batchToken(kind: BatchKind): Scripted | undefined {
      switch (kind) {
        case 'ok':
          return { token: tok('reg') };
        case 'invalid':
          return { token: tok('invalid'), code: '10302' };
        case 'retry':
          // pushToList reports dead targets only (invalidUsers); the mock has no per-target retry.
          return undefined;
        case 'failed':
          // invalidUsers status 4: not a test device (pushMode 1).
          return { token: tok('notest'), code: 'not_test_user' };
      }
    },
    batch: { chunkSize: 1000, retryScope: 'token' },
    payloadTooLarge: { code: 'PayloadTooLarge', local: true },
  });
}
