import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import fcmModule, {
  FCM_MAX_PAYLOAD_BYTES,
  FCM_MAX_TTL_SECONDS,
  GOOGLE_TOKEN_URI,
  buildFcmMessage,
  classifyFcmError,
  classifyOAuthFailure,
  endpointTarget,
  fcmOverridesSchema,
  signServiceAccountAssertion,
  type FcmMessageResult,
} from '../../providers/fcm/index.js';
import { CredentialError, type PushContent } from '../../providers/types.js';

const NOW = 1_750_000_000_000;

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'msg-1',
    notification: { title: 'Order shipped', body: 'Your order 42 is on its way', image: 'https://cdn.example.com/p.png' },
    data: { orderId: '42' },
    options: { ttl: 3600, priority: 'high', collapseKey: 'order-42' },
    expiresAt: NOW + 3_600_000,
    ...over,
  };
}

function ok(r: FcmMessageResult) {
  assert.ok(r.ok, `expected a message, got ${JSON.stringify(r)}`);
  return r.message;
}

function fail(r: FcmMessageResult) {
  assert.ok(!r.ok, 'expected a failure');
  assert.equal(r.outcome.kind, 'failed');
  assert.ok(r.outcome.kind === 'failed');
  return r.outcome.reason;
}

describe('buildFcmMessage', () => {
  it('stringifies data and always adds relay_id', () => {
    const m = ok(buildFcmMessage(content({ data: { n: 1, b: true, o: { x: [1, 2] }, s: 'text', nul: null, gone: undefined } }), NOW));
    assert.deepEqual(m.data, { n: '1', b: 'true', o: '{"x":[1,2]}', s: 'text', nul: 'null', relay_id: 'msg-1' });
  });

  it('adds relay_id to a message without data, and overrides cannot replace it', () => {
    assert.deepEqual(ok(buildFcmMessage(content({ data: undefined }), NOW)).data, { relay_id: 'msg-1' });
    const m = ok(buildFcmMessage(content({ overrides: { fcm: { data: { relay_id: 'forged', extra: 'yes' } } } }), NOW));
    assert.deepEqual(m.data, { orderId: '42', extra: 'yes', relay_id: 'msg-1' });
  });

  it('maps notification, priority, collapse key and click action', () => {
    const m = ok(buildFcmMessage(content({ notification: { title: 'T', body: 'B', image: 'https://i.example/x.png', clickAction: 'app://orders/42', sound: 'default', badge: 3 } }), NOW));
    assert.deepEqual(m.notification, { title: 'T', body: 'B', imageUrl: 'https://i.example/x.png' });
    assert.equal(m.android?.priority, 'high');
    assert.equal(m.android?.collapseKey, 'order-42');
    assert.deepEqual(m.android?.notification, { clickAction: 'app://orders/42', sound: 'default', notificationCount: 3 });
    const normal = ok(buildFcmMessage(content({ options: { ttl: 60, priority: 'normal' } }), NOW));
    assert.equal(normal.android?.priority, 'normal');
    assert.equal(normal.android?.collapseKey, undefined);
  });

  it('sends a data message when there is no notification', () => {
    const m = ok(buildFcmMessage(content({ notification: undefined }), NOW));
    assert.equal(m.notification, undefined);
    assert.equal(m.android?.notification, undefined);
  });

  it('sets ttl to the whole seconds left until expiresAt, at most 4 weeks', () => {
    assert.equal(ok(buildFcmMessage(content({ expiresAt: NOW + 90_999 }), NOW)).android?.ttl, 90_000);
    assert.equal(ok(buildFcmMessage(content({ expiresAt: NOW + 60 * 86_400_000 }), NOW)).android?.ttl, FCM_MAX_TTL_SECONDS * 1000);
    // The original TTL does not matter, only the deadline.
    assert.equal(ok(buildFcmMessage(content({ options: { ttl: 86_400, priority: 'high' }, expiresAt: NOW + 5_000 }), NOW)).android?.ttl, 5_000);
  });

  it('refuses to send once the TTL has passed', () => {
    const r = buildFcmMessage(content({ expiresAt: NOW + 999 }), NOW);
    assert.ok(!r.ok && r.outcome.kind === 'expired');
    assert.equal(r.outcome.reason.code, 'expired');
  });

  it('merges overrides.fcm last, deeply, with the TTL still capped', () => {
    const m = ok(
      buildFcmMessage(
        content({
          notification: { title: 'T', clickAction: 'app://x' },
          overrides: {
            fcm: {
              notification: { title: 'Overridden' },
              android: { ttl: 999_999_999, priority: 'normal', notification: { channelId: 'orders', color: '#ff6600', eventTimestamp: '2026-01-02T03:04:05Z' } },
              apns: { headers: { 'apns-priority': '5' }, payload: { aps: { mutableContent: true } } },
              fcmOptions: { analyticsLabel: 'spring_sale' },
            },
          },
        }),
        NOW,
      ),
    );
    assert.deepEqual(m.notification, { title: 'Overridden' });
    assert.equal(m.android?.priority, 'normal');
    assert.equal(m.android?.ttl, 3_600_000, 'an override cannot outlive the message');
    assert.equal(m.android?.notification?.clickAction, 'app://x');
    assert.equal(m.android?.notification?.channelId, 'orders');
    assert.ok(m.android?.notification?.eventTimestamp instanceof Date);
    assert.deepEqual(m.apns, {
      headers: { 'apns-priority': '5', 'apns-expiration': String(Math.floor((NOW + 3_600_000) / 1000)), 'apns-collapse-id': 'order-42' },
      payload: { aps: { mutableContent: true } },
    });
    assert.deepEqual(m.fcmOptions, { analyticsLabel: 'spring_sale' });
    const shorter = ok(buildFcmMessage(content({ overrides: { fcm: { android: { ttl: 0 } } } }), NOW));
    assert.equal(shorter.android?.ttl, 0, 'a shorter TTL (now or never) is kept');
  });

  it('an iOS token reached through FCM gets the options in APNs terms: priority, expiration, collapse id, sound, badge', () => {
    const alert = ok(buildFcmMessage(content({ notification: { title: 'Hi', sound: 'ding', badge: 2 } }), NOW));
    assert.deepEqual(alert.apns, {
      headers: { 'apns-priority': '10', 'apns-expiration': String(Math.floor((NOW + 3_600_000) / 1000)), 'apns-collapse-id': 'order-42' },
      payload: { aps: { sound: 'ding', badge: 2 } },
    });
    // Nothing to show: a background push, which APNs takes only at priority 5.
    const data = ok(buildFcmMessage(content({ notification: undefined, options: { ttl: 0, priority: 'high' }, expiresAt: NOW + 30_000 }), NOW));
    assert.deepEqual(data.apns, { headers: { 'apns-priority': '5', 'apns-expiration': '0' }, payload: { aps: { contentAvailable: true } } });
  });

  it('click action, sound and badge without a title or body make no empty Android notification', () => {
    const m = ok(buildFcmMessage(content({ notification: { clickAction: 'app://x', sound: 'ding', badge: 3 } }), NOW));
    assert.equal(m.notification, undefined);
    assert.equal(m.android?.notification, undefined);
  });

  it('ttl 0 (now or never) sends android.ttl 0 within its attempt window, and no override lengthens it', () => {
    const now = ok(buildFcmMessage(content({ options: { ttl: 0, priority: 'high' }, expiresAt: NOW + 30_000 }), NOW));
    assert.equal(now.android?.ttl, 0);
    const longer = ok(buildFcmMessage(content({ options: { ttl: 0, priority: 'high' }, expiresAt: NOW + 30_000, overrides: { fcm: { android: { ttl: 60_000 } } } }), NOW));
    assert.equal(longer.android?.ttl, 0);
  });

  it('refuses overrides.fcm that is invalid or names a target (checked when the push is accepted)', () => {
    for (const fcm of [{ token: 'x' }, { topic: 'news' }, { android: { priority: 'urgent' } }, { data: { n: 1 } }, { android: { notification: { color: 'red' } } }]) {
      assert.equal(fcmModule.overridesSchema.safeParse(fcm).success, false, JSON.stringify(fcm));
    }
  });

  it('refuses reserved data keys', () => {
    assert.match(fail(buildFcmMessage(content({ data: { from: 'me' } }), NOW)).message, /reserved/);
    assert.match(fail(buildFcmMessage(content({ data: { google_x: '1' } }), NOW)).message, /reserved/);
  });

  it('enforces the 4096-byte payload limit locally', () => {
    // Counted: data keys and values (incl. relay_id=msg-1); not the ttl, priority or token.
    const used = Buffer.byteLength('blob') + Buffer.byteLength('relay_id') + Buffer.byteLength('msg-1');
    const fits = buildFcmMessage(content({ notification: undefined, data: { blob: 'x'.repeat(FCM_MAX_PAYLOAD_BYTES - used) } }), NOW);
    assert.ok(fits.ok);
    assert.equal(fits.payloadBytes, FCM_MAX_PAYLOAD_BYTES);
    const reason = fail(buildFcmMessage(content({ notification: undefined, data: { blob: 'x'.repeat(FCM_MAX_PAYLOAD_BYTES - used + 1) } }), NOW));
    assert.equal(reason.code, 'INVALID_ARGUMENT');
    assert.match(reason.message, /message too big/);
    // Multi-byte characters count as bytes, not characters.
    assert.ok(!buildFcmMessage(content({ notification: undefined, data: { blob: '€'.repeat(1400) } }), NOW).ok);
  });
});

describe('fcmOverridesSchema', () => {
  it('accepts a partial firebase-admin Message without a target', () => {
    assert.ok(fcmOverridesSchema.safeParse({ android: { directBootOk: true, fcmOptions: { analyticsLabel: 'a' } }, webpush: { fcmOptions: { link: 'https://x.example' } } }).success);
    assert.ok(!fcmOverridesSchema.safeParse({ condition: "'a' in topics" }).success);
    assert.ok(!fcmOverridesSchema.safeParse({ android: { ttl: -1 } }).success);
  });
});

// -- classification -------------------------------------------------------------------------

function rpc(code: number, status: string, message: string, details: unknown[] = []) {
  return JSON.stringify({ error: { code, message, status, details } });
}
const fcmDetail = (errorCode: string) => ({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode });
const badRequest = (field: string) => ({ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field, description: 'x' }] });
const sdkErr = (code: string, message = 'server message') => Object.assign(new Error(message), { code });

describe('classifyFcmError', () => {
  it('UNREGISTERED → invalid, with evidence', () => {
    const o = classifyFcmError(sdkErr('messaging/registration-token-not-registered', 'Requested entity was not found.'), {
      status: 404,
      body: rpc(404, 'NOT_FOUND', 'Requested entity was not found.', [fcmDetail('UNREGISTERED')]),
    });
    assert.equal(o.kind, 'invalid');
    assert.ok(o.kind === 'invalid');
    assert.equal(o.reason.code, 'UNREGISTERED');
    assert.equal(o.reason.message, 'Requested entity was not found.');
    assert.deepEqual({ status: o.reason.evidence?.status, errorCode: o.reason.evidence?.errorCode }, { status: 404, errorCode: 'UNREGISTERED' });
    // Without transport evidence the SDK code alone decides.
    assert.equal(classifyFcmError(sdkErr('messaging/registration-token-not-registered')).kind, 'invalid');
  });

  it('a 404 without an FcmError detail does not quarantine the token', () => {
    const o = classifyFcmError(sdkErr('messaging/registration-token-not-registered'), { status: 404, body: rpc(404, 'NOT_FOUND', 'Project not found') });
    assert.equal(o.kind, 'failed');
    const html = classifyFcmError(sdkErr('messaging/unknown-error'), { status: 404, body: '<html>not found</html>' });
    assert.equal(html.kind, 'failed');
  });

  it('INVALID_ARGUMENT about the token → invalid; other INVALID_ARGUMENT → failed', () => {
    const tokenViolation = classifyFcmError(sdkErr('messaging/invalid-argument'), {
      status: 400,
      body: rpc(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', [fcmDetail('INVALID_ARGUMENT'), badRequest('message.token')]),
    });
    assert.equal(tokenViolation.kind, 'invalid');
    assert.equal(classifyFcmError(sdkErr('messaging/invalid-registration-token')).kind, 'invalid');
    assert.equal(classifyFcmError(sdkErr('messaging/invalid-argument', 'The registration token is not a valid FCM registration token')).kind, 'invalid');
    const ttl = classifyFcmError(sdkErr('messaging/invalid-argument', 'bad ttl'), {
      status: 400,
      body: rpc(400, 'INVALID_ARGUMENT', 'Invalid value at message.android.ttl', [badRequest('message.android.ttl')]),
    });
    assert.equal(ttl.kind, 'failed');
    assert.ok(ttl.kind === 'failed');
    assert.equal(ttl.reason.code, 'INVALID_ARGUMENT');
    assert.deepEqual(ttl.reason.evidence?.fieldViolations, ['message.android.ttl']);
    assert.equal(classifyFcmError(sdkErr('messaging/invalid-payload', 'data must only contain string values')).kind, 'failed');
  });

  it('QUOTA_EXCEEDED → retry honouring Retry-After, else at least 60 s', () => {
    const withHeader = classifyFcmError(sdkErr('messaging/message-rate-exceeded'), {
      status: 429,
      retryAfter: '12',
      body: rpc(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded', [fcmDetail('QUOTA_EXCEEDED')]),
    });
    assert.deepEqual([withHeader.kind, withHeader.kind === 'retry' && withHeader.afterMs], ['retry', 12_000]);
    const bare = classifyFcmError(sdkErr('messaging/message-rate-exceeded'));
    assert.deepEqual([bare.kind, bare.kind === 'retry' && bare.afterMs], ['retry', 60_000]);
  });

  it('UNAVAILABLE and INTERNAL → retry, with Retry-After when given (seconds or HTTP date)', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const u = classifyFcmError(sdkErr('messaging/server-unavailable'), { status: 503, retryAfter: 'Thu, 01 Jan 2026 00:00:07 GMT', body: rpc(503, 'UNAVAILABLE', 'busy', [fcmDetail('UNAVAILABLE')]) }, now);
    assert.equal(u.kind, 'retry');
    assert.equal(u.kind === 'retry' && u.afterMs, 7_000);
    const i = classifyFcmError(sdkErr('messaging/internal-error'), { status: 500, body: rpc(500, 'INTERNAL', 'oops', [fcmDetail('INTERNAL')]) });
    assert.equal(i.kind, 'retry');
    assert.equal(i.kind === 'retry' && i.afterMs, undefined);
    assert.equal(i.kind === 'retry' && i.reason.code, 'INTERNAL');
  });

  it('network errors and timeouts → retry', () => {
    for (const e of [sdkErr('app/network-error', 'Error while making request: socket hang up. Error code: ECONNRESET'), sdkErr('app/network-timeout'), sdkErr('ECONNRESET'), new Error('boom')]) {
      assert.equal(classifyFcmError(e).kind, 'retry', String((e as { code?: string }).code));
    }
  });

  it('credential problems → failed with a clear reason', () => {
    const third = classifyFcmError(sdkErr('messaging/third-party-auth-error', 'Auth error from APNS or Web Push Service'), {
      status: 401,
      body: rpc(401, 'UNAUTHENTICATED', 'Auth error from APNS or Web Push Service', [fcmDetail('THIRD_PARTY_AUTH_ERROR')]),
    });
    assert.equal(third.kind, 'failed');
    assert.equal(third.kind === 'failed' && third.reason.code, 'THIRD_PARTY_AUTH_ERROR');
    assert.match(third.kind === 'failed' ? third.reason.message : '', /APNs/);

    // A rejected OAuth token: firebase-admin calls it third-party-auth-error; the body says otherwise.
    const oauth = classifyFcmError(sdkErr('messaging/third-party-auth-error', 'Request had invalid authentication credentials.'), {
      status: 401,
      body: rpc(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'),
    });
    assert.equal(oauth.kind, 'failed');
    assert.equal(oauth.kind === 'failed' && oauth.reason.code, 'UNAUTHENTICATED');
    assert.match(oauth.kind === 'failed' ? oauth.reason.message : '', /OAuth/);

    const mismatch = classifyFcmError(sdkErr('messaging/mismatched-credential', 'SenderId mismatch'), {
      status: 403,
      body: rpc(403, 'PERMISSION_DENIED', 'SenderId mismatch', [fcmDetail('SENDER_ID_MISMATCH')]),
    });
    assert.equal(mismatch.kind === 'failed' && mismatch.reason.code, 'SENDER_ID_MISMATCH');
    const denied = classifyFcmError(sdkErr('messaging/mismatched-credential'), { status: 403, body: rpc(403, 'PERMISSION_DENIED', 'Permission denied') });
    assert.equal(denied.kind === 'failed' && denied.reason.code, 'PERMISSION_DENIED');
    assert.equal(classifyFcmError(sdkErr('messaging/mismatched-credential')).kind, 'failed');
  });

  it('OAuth failures: a rejected grant fails, an unreachable token server is retried', () => {
    const rejected = classifyFcmError(sdkErr('app/invalid-credential', 'Credential implementation … failed: "OAuth token request to https://x/token failed: invalid_grant (HTTP 400): Invalid JWT Signature."'));
    assert.equal(rejected.kind, 'failed');
    assert.equal(classifyFcmError(sdkErr('app/invalid-credential', 'failed: ECONNREFUSED')).kind, 'retry');
    const f = classifyOAuthFailure({ tokenUri: 'https://t/token', status: 400, error: 'invalid_grant', description: 'Invalid JWT Signature.', retryable: false });
    assert.equal(f.kind, 'failed');
    assert.equal(f.kind === 'failed' && f.reason.code, 'invalid_grant');
    const r = classifyOAuthFailure({ tokenUri: 'https://t/token', status: 503, error: 'http_503', description: 'busy', retryable: true, retryAfterMs: 2000 });
    assert.deepEqual([r.kind, r.kind === 'retry' && r.afterMs], ['retry', 2000]);
  });
});

// -- credential ------------------------------------------------------------------------------

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
const sa = { type: 'service_account', project_id: 'demo', private_key_id: 'k1', private_key: rsa.privateKey, client_email: 'svc@demo.iam.gserviceaccount.com' };

describe('fcm credential', () => {
  it('parses a service account, defaults token_uri and keeps unknown fields', () => {
    const cred = fcmModule.credentialSchema.parse({ serviceAccount: { ...sa, auth_uri: 'https://accounts.google.com/o/oauth2/auth' } });
    assert.equal(cred.serviceAccount.token_uri, GOOGLE_TOKEN_URI);
    assert.equal((cred.serviceAccount as Record<string, unknown>).auth_uri, 'https://accounts.google.com/o/oauth2/auth');
    assert.deepEqual(fcmModule.describe(cred), { projectId: 'demo', clientEmail: 'svc@demo.iam.gserviceaccount.com', tokenUri: GOOGLE_TOKEN_URI });
    fcmModule.checkCredential!(cred);
  });

  it('turns literal \\n in a pasted key into newlines', () => {
    const cred = fcmModule.credentialSchema.parse({ serviceAccount: { ...sa, private_key: rsa.privateKey.replace(/\n/g, '\\n') } });
    fcmModule.checkCredential!(cred);
  });

  it('rejects missing fields and a non-https token_uri', () => {
    assert.ok(!fcmModule.credentialSchema.safeParse({ serviceAccount: { ...sa, client_email: undefined } }).success);
    assert.ok(!fcmModule.credentialSchema.safeParse({ serviceAccount: { ...sa, token_uri: 'http://evil.example/token' } }).success);
    assert.ok(!fcmModule.credentialSchema.safeParse({ serviceAccount: { ...sa, type: 'authorized_user' } }).success);
  });

  it('checkCredential throws CredentialError on a key that does not parse or is not RSA', () => {
    const bad = fcmModule.credentialSchema.parse({ serviceAccount: { ...sa, private_key: '-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n' } });
    assert.throws(() => fcmModule.checkCredential!(bad), (e: unknown) => e instanceof CredentialError && e.path === 'serviceAccount.private_key');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const ecCred = fcmModule.credentialSchema.parse({ serviceAccount: { ...sa, private_key: ec.privateKey } });
    assert.throws(() => fcmModule.checkCredential!(ecCred), (e: unknown) => e instanceof CredentialError && /RSA/.test(e.message));
  });

  it('signs the JWT-bearer assertion with the claims Google expects', () => {
    const cred = fcmModule.credentialSchema.parse({ serviceAccount: { ...sa, token_uri: 'https://tokens.example/token' } });
    const jwt = signServiceAccountAssertion(cred.serviceAccount, createPrivateKey(rsa.privateKey), 1_000_000);
    const [h, p, s] = jwt.split('.');
    assert.deepEqual(JSON.parse(Buffer.from(h!, 'base64url').toString()), { alg: 'RS256', typ: 'JWT' });
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    assert.deepEqual(claims, {
      iss: 'svc@demo.iam.gserviceaccount.com',
      scope: 'https://www.googleapis.com/auth/firebase.messaging https://www.googleapis.com/auth/cloud-platform',
      aud: 'https://tokens.example/token',
      iat: 1_000_000,
      exp: 1_003_600,
    });
    assert.ok(verify('sha256', Buffer.from(`${h}.${p}`), createPublicKey(rsa.publicKey), Buffer.from(s!, 'base64url')));
  });
});

describe('endpointTarget', () => {
  it('keeps the real host name for the default endpoint', () => {
    assert.deepEqual(endpointTarget('https://fcm.googleapis.com'), { host: 'fcm.googleapis.com', port: 443, servername: 'fcm.googleapis.com' });
  });
  it('verifies a custom endpoint against its own name or IP', () => {
    assert.deepEqual(endpointTarget('https://127.0.0.1:8443'), { host: '127.0.0.1', port: 8443, servername: '', hostHeader: '127.0.0.1:8443' });
    assert.deepEqual(endpointTarget('https://fcm-staging.internal'), { host: 'fcm-staging.internal', port: 443, servername: 'fcm-staging.internal', hostHeader: 'fcm-staging.internal' });
    assert.deepEqual(endpointTarget('https://[::1]:9000'), { host: '::1', port: 9000, servername: '', hostHeader: '[::1]:9000' });
    assert.throws(() => endpointTarget('http://127.0.0.1:80'), /https/);
  });
});
