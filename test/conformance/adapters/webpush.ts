import { startWebPushMock, type WebPushMock } from '../../mocks/webpush-server.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

/** Web Push (providers/webpush.ts, VAPID + aes128gcm) against the RFC 8030 push service mock. */
export function webpushAdapter(): ConformanceAdapter {
  const { m, adapter } = mockLifecycle<WebPushMock>(
    async () => {
      const mock = await startWebPushMock();
      // No VAPID keys given: the module's complete() generates them, as the API does.
      const provider = createProvider('webpush', { subject: 'mailto:ops@example.com' }, context({}));
      return { mock, provider };
    },
    (mock) => mock.requests.length,
  );
  const subscription = () => m().subscribe();

  return adapter({
    channel: 'webpush',
    ok: () => subscription().json,
    // The push service's `Location` for the message.
    providerId: () => new RegExp(`^${m().origin.replace(/[.]/g, '\\.')}/message/[0-9a-f-]{36}$`),
    invalid() {
      const sub = subscription();
      m().unsubscribe(sub);
      return { token: sub.json, code: 'Gone', evidence: { status: 410 } };
    },
    retryAfter() {
      const sub = subscription();
      m().script(sub, { status: 429, retryAfter: '7' });
      return { token: sub.json, code: 'TooManyRequests', retryAfterSec: 7 };
    },
    authExpiry: {
      notApplicable: 'Web Push has no server-issued token: the provider signs its own VAPID JWT (12 h, renewed 1 h early) for every push service',
    },
    batchToken(kind: BatchKind): Scripted {
      const sub = subscription();
      switch (kind) {
        case 'ok':
          return { token: sub.json };
        case 'invalid':
          m().unsubscribe(sub);
          return { token: sub.json, code: 'Gone' };
        case 'retry':
          m().setBehavior(sub, { status: 503 });
          return { token: sub.json, code: 'HTTP503' };
        case 'failed':
          m().setBehavior(sub, { status: 400 });
          return { token: sub.json, code: 'HTTP400' };
      }
    },
    batch: { chunkSize: 1, retryScope: 'token' },
    payloadTooLarge: { code: 'PayloadTooLarge', local: true },
  });
}
