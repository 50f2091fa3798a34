import { generateKeyPairSync } from 'node:crypto';
import { startApnsMock, type ApnsMock } from '../mocks/apns-server.js';
import { startFcmMock, type FcmMock } from '../mocks/fcm-server.js';

export const APNS_TEAM = 'TEAM123456';
export const APNS_KEY_ID = 'KEY1234567';
export const BUNDLE_ID = 'com.example.relay';
export const FCM_PROJECT = 'relay-test';

/** Spec-true APNs and FCM mocks, with the key material Relay's credentials must match. */
export async function startProviderMocks(opts: { apnsDelayMs?: number; record?: boolean } = {}) {
  const p8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const clientEmail = `relay@${FCM_PROJECT}.iam.gserviceaccount.com`;
  const apns: ApnsMock = await startApnsMock({
    keys: [{ teamId: APNS_TEAM, keyId: APNS_KEY_ID, key: p8 }],
    bundleIds: [BUNDLE_ID],
    ...(opts.apnsDelayMs ? { delayMs: opts.apnsDelayMs } : {}),
    ...(opts.record === false ? { record: false } : {}),
  });
  const fcm: FcmMock = await startFcmMock(opts.record === false ? { record: false } : {});
  fcm.registerServiceAccount(rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(), clientEmail, FCM_PROJECT);
  const credentials = {
    apns: { teamId: APNS_TEAM, keyId: APNS_KEY_ID, key: p8, bundleId: BUNDLE_ID, production: false },
    fcm: {
      serviceAccount: {
        type: 'service_account',
        project_id: FCM_PROJECT,
        private_key_id: 'k1',
        private_key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: clientEmail,
        token_uri: `${fcm.url}/token`,
      },
    },
  };
  return {
    apns,
    fcm,
    credentials,
    env: { APNS_ENDPOINT: apns.url, FCM_ENDPOINT: fcm.url },
    async close() {
      await Promise.all([apns.close(), fcm.close()]);
    },
  };
}
