import { startTwilioMock, type TwilioMock } from '../../mocks/sms/twilio.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

/** The sms channel's Twilio driver (providers/sms/) against the strict Twilio mock. */
export function smsAdapter(): ConformanceAdapter {
  const { m, adapter } = mockLifecycle<TwilioMock>(
    async () => {
      const mock = await startTwilioMock();
      const provider = createProvider('sms', { driver: 'twilio', accountSid: mock.accountSid, authToken: mock.authToken, from: '+15005550006' }, context({ twilio: mock.url }));
      return { mock, provider };
    },
    (mock) => mock.requests.length,
  );
  let n = 0;
  // Distinct E.164 numbers the mock accepts: +1 415 7xx xxxx.
  const number = () => `+1415700${String(++n).padStart(4, '0')}`;

  return adapter({
    channel: 'sms',
    ok: () => number(),
    providerId: () => m().messages.at(-1)?.sid ?? '(no message accepted)',
    invalid: () => ({ token: '+15005550001', code: '21211', evidence: { status: 400, code: 21211 } }),
    retryAfter() {
      m().failFirst(1, { status: 429, code: 20429, message: 'Too Many Requests', retryAfter: '7' });
      return { token: number(), code: '20429', retryAfterSec: 7 };
    },
    authExpiry: { notApplicable: 'Twilio takes HTTP Basic auth (Account SID and Auth Token) on every request: no token to expire or refresh' },
    batchToken(kind: BatchKind): Scripted | undefined {
      switch (kind) {
        case 'ok':
          return { token: number() };
        case 'invalid':
          return { token: '+15005550009', code: '21614' };
        case 'retry': {
          const token = number();
          m().fates.set(token, { status: 503, code: 20500, message: 'Internal Server Error' });
          return { token, code: '20500' };
        }
        case 'failed': {
          const token = number();
          m().fates.set(token, { status: 400, code: 21408, message: 'Permission to send an SMS has not been enabled for the region' });
          return { token, code: '21408' };
        }
      }
    },
    // One request per number: every outcome is the number's own.
    batch: { chunkSize: 1, retryScope: 'token' },
    payloadTooLarge: { notApplicable: 'an SMS carries text only (at most 1,600 characters, cut to fit); the data map is not sent' },
  });
}
