import { generateKeyPairSync } from 'node:crypto';
import type { ApnsContextExtras } from '../../../providers/apns/index.js';
import { mockToken, startApnsMock, type ApnsMock, type MockTokenKind } from '../../mocks/apns-server.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

const TEAM = 'TEAM123456';
const KID = 'KEY1234567';
const BUNDLE = 'com.example.relay';

/** APNs through node-apn (providers/apns.ts) against the HTTP/2 APNs mock (token auth, sandbox). */
export function apnsAdapter(): ConformanceAdapter {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const { m, adapter } = mockLifecycle<ApnsMock>(
    async () => {
      const mock = await startApnsMock({ keys: [{ teamId: TEAM, keyId: KID, key }], bundleIds: [BUNDLE] });
      const extras: ApnsContextExtras = { apnsRequestTimeoutMs: 2000 };
      const provider = createProvider(
        'apns',
        { teamId: TEAM, keyId: KID, key, bundleId: BUNDLE, production: false },
        context({ apns: mock.url }, { ...extras }),
      );
      return { mock, provider };
    },
    (mock) => mock.requests.length,
  );
  let n = 0;
  const tok = (kind: MockTokenKind) => mockToken(kind, ++n);

  /** Distinct provider JWTs the mock has seen, minus the first: node-apn's regenerations. */
  const jwtRefreshes = () => Math.max(0, new Set(m().requests.map((r) => r.headers.authorization).filter(Boolean)).size - 1);

  return adapter({
    channel: 'apns',
    ok: () => tok('ok'),
    // `apns-id` of the 200 answer (the mock generates a UUID when the request carries none).
    providerId: () => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    invalid: () => ({ token: tok('unregistered'), code: 'Unregistered', evidence: { status: 410, reason: 'Unregistered', timestamp: /^\d{13}$/ } }),
    retryAfter: () => ({
      token: tok('tooManyRequests'),
      code: 'TooManyRequests',
      retryAfterSec: 1,
      hidden:
        'node-apn reads the header as `Retry-After` from HTTP/2 headers (always lower-case) and deletes ' +
        'error.retryAfter before returning, so the provider never sees it; the worker backoff decides',
    }),
    authExpiry: {
      // node-apn regenerates its JWT after a 403 ExpiredProviderToken; the provider re-sends once.
      arm() {
        const t = tok('ok');
        m().setBehavior(t, { status: 403, reason: 'ExpiredProviderToken', failFirst: 1 });
        return t;
      },
      refreshes: jwtRefreshes,
      requestsPerToken: 2,
      persistent: {
        arm() {
          const t = tok('ok');
          m().setBehavior(t, { status: 403, reason: 'ExpiredProviderToken' });
          return t;
        },
        expect: { kind: 'failed', code: 'ExpiredProviderToken' },
        requestsPerToken: 2,
      },
    },
    batchToken(kind: BatchKind): Scripted {
      switch (kind) {
        case 'ok':
          return { token: tok('ok') };
        case 'invalid':
          return { token: tok('badDeviceToken'), code: 'BadDeviceToken' };
        case 'retry':
          return { token: tok('serviceUnavailable'), code: 'ServiceUnavailable' };
        case 'failed': {
          const t = tok('ok');
          m().setBehavior(t, { status: 400, reason: 'TopicDisallowed' });
          return { token: t, code: 'TopicDisallowed' };
        }
      }
    },
    batch: { chunkSize: 1, retryScope: 'token' },
    payloadTooLarge: { code: 'PayloadTooLarge', local: true },
  });
}
