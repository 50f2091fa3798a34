import { generateKeyPairSync } from 'node:crypto';
import { startFcmMock, type FcmMock } from '../../mocks/fcm-server.js';
import { context, createProvider, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';
import { mockLifecycle } from '../../helpers/mock-adapter.js';

const PROJECT = 'conformance-project';
const EMAIL = `relay-push@${PROJECT}.iam.gserviceaccount.com`;

/** FCM HTTP v1 through firebase-admin (providers/fcm.ts) against the FCM + Google OAuth mock. */
export function fcmAdapter(): ConformanceAdapter {
  const keys = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const { m, adapter } = mockLifecycle<FcmMock>(
    async () => {
      const mock = await startFcmMock();
      mock.registerServiceAccount(keys.publicKey, EMAIL);
      const provider = createProvider(
        'fcm',
        {
          serviceAccount: {
            type: 'service_account',
            project_id: PROJECT,
            private_key_id: 'conformance-key',
            private_key: keys.privateKey,
            client_email: EMAIL,
            token_uri: `${mock.url}/token`,
          },
        },
        context({ fcm: mock.url }),
      );
      return { mock, provider };
    },
    (mock) => mock.stats.sends,
  );
  let n = 0;
  const tok = (prefix: string) => `${prefix}-${++n}`;

  return adapter({
    channel: 'fcm',
    ok: () => tok('ok'),
    providerId: () => new RegExp(`^projects/${PROJECT}/messages/0:\\d+%`),
    invalid: () => ({ token: tok('unregistered'), code: 'UNREGISTERED', evidence: { status: 404, errorCode: 'UNREGISTERED' } }),
    retryAfter() {
      const t = tok('ok');
      m().setBehavior(t, { error: 'UNAVAILABLE', retryAfter: 7 });
      return { token: t, code: 'UNAVAILABLE', retryAfterSec: 7 };
    },
    authExpiry: {
      // Google can invalidate an access token before its stated expiry; FCM then answers 401
      // UNAUTHENTICATED (no FcmError). The provider drops the token, fetches one new token and
      // re-sends once. (A token that stays refused after the refresh is covered, with its own token
      // endpoint, in test/integration/fcm-provider.test.ts: failed UNAUTHENTICATED after one re-send.)
      arm() {
        m().revokeAccessTokens();
        return tok('ok');
      },
      refreshes: () => m().tokenRequests.filter((r) => r.status === 200).length,
      requestsPerToken: 2,
    },
    batchToken(kind: BatchKind): Scripted {
      switch (kind) {
        case 'ok':
          return { token: tok('ok') };
        case 'invalid':
          return { token: tok('invalid'), code: 'INVALID_ARGUMENT' };
        case 'retry':
          return { token: tok('unavailable'), code: 'UNAVAILABLE' };
        case 'failed':
          return { token: tok('mismatch'), code: 'SENDER_ID_MISMATCH' };
      }
    },
    batch: { chunkSize: 1, retryScope: 'token' },
    payloadTooLarge: { code: 'INVALID_ARGUMENT', local: true },
  });
}
