import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import apnsModule, {
  APNS_TOPIC_SUFFIX,
  TOO_MANY_TOKEN_UPDATES_DELAY_MS,
  apnsCredentialSchema,
  apnsOverridesSchema,
  buildApnsRequest,
  classifyApnsResult,
  isApnsTokenSyntax,
  mergeAps,
  type ApnsRequest,
  type BuildResult,
} from '../../providers/apns.js';
import { Semaphore } from '../../providers/shared/limiter.js';
import { APNS_PUSH_TYPES, CredentialError, EXPIRED_CODE, type PushContent } from '../../providers/types.js';

const NOW = 1_800_000_000_000;
const BUNDLE = 'com.example.app';

function content(over: Partial<PushContent> = {}, opts: Partial<PushContent['options']> = {}): PushContent {
  return {
    messageId: 'msg-1',
    notification: { title: 'Hello', body: 'World' },
    options: { ttl: 3600, priority: 'high', ...opts },
    expiresAt: NOW + 3_600_000,
    ...over,
  };
}

function ok(r: BuildResult): ApnsRequest {
  assert.equal(r.ok, true, r.ok ? '' : JSON.stringify(r.outcome));
  return (r as { ok: true; request: ApnsRequest }).request;
}

function failCode(r: BuildResult): string {
  assert.equal(r.ok, false, 'expected a local failure');
  const o = (r as { ok: false; outcome: { kind: string; reason: { code: string; evidence?: Record<string, unknown> } } }).outcome;
  assert.equal(o.kind, 'failed');
  assert.equal(o.reason.evidence?.local, true);
  return o.reason.code;
}

describe('buildApnsRequest: topic and push type', () => {
  const expected: Record<string, string> = {
    alert: BUNDLE,
    background: BUNDLE,
    location: `${BUNDLE}.location-query`,
    voip: `${BUNDLE}.voip`,
    complication: `${BUNDLE}.complication`,
    fileprovider: `${BUNDLE}.pushkit.fileprovider`,
    liveactivity: `${BUNDLE}.push-type.liveactivity`,
    pushtotalk: `${BUNDLE}.voip-ptt`,
    widgets: `${BUNDLE}.push-type.widgets`,
  };
  for (const [pushType, topic] of Object.entries(expected)) {
    it(`${pushType} → ${topic}`, () => {
      const r = ok(buildApnsRequest(content({}, { pushType: pushType as never }), BUNDLE, NOW));
      assert.equal(r.pushType, pushType);
      assert.equal(r.topic, topic);
    });
  }

  it('covers every push type in the suffix table', () => {
    assert.deepEqual(Object.keys(APNS_TOPIC_SUFFIX).sort(), [...APNS_PUSH_TYPES].sort());
  });

  it('mdm needs an explicit topic', () => {
    assert.equal(failCode(buildApnsRequest(content({}, { pushType: 'mdm' }), BUNDLE, NOW)), 'MissingTopic');
    const r = ok(buildApnsRequest(content({ overrides: { apns: { topic: 'com.apple.mgmt.External.x', payload: { mdm: 'magic' } } } }, { pushType: 'mdm' }), BUNDLE, NOW));
    assert.equal(r.topic, 'com.apple.mgmt.External.x');
    assert.equal(r.payload.mdm, 'magic');
  });

  it('infers alert when there is something to show, background when there is only data', () => {
    assert.equal(ok(buildApnsRequest(content(), BUNDLE, NOW)).pushType, 'alert');
    assert.equal(ok(buildApnsRequest(content({ notification: { badge: 2 } }), BUNDLE, NOW)).pushType, 'alert');
    const bg = ok(buildApnsRequest(content({ notification: undefined, data: { k: 'v' } }), BUNDLE, NOW));
    assert.equal(bg.pushType, 'background');
    assert.equal(bg.priority, 5);
  });
});

describe('buildApnsRequest: priority, expiry, collapse id', () => {
  it('maps high → 10 and normal → 5', () => {
    assert.equal(ok(buildApnsRequest(content({}, { priority: 'high' }), BUNDLE, NOW)).priority, 10);
    assert.equal(ok(buildApnsRequest(content({}, { priority: 'normal' }), BUNDLE, NOW)).priority, 5);
  });

  it('background is always priority 5 with content-available and no alert, even with an override', () => {
    const r = ok(buildApnsRequest(content({ overrides: { apns: { priority: 10 } } }, { pushType: 'background', priority: 'high' }), BUNDLE, NOW));
    assert.equal(r.priority, 5);
    assert.deepEqual(r.payload.aps, { 'content-available': 1 });
  });

  it('takes the override priority for other push types', () => {
    assert.equal(ok(buildApnsRequest(content({ overrides: { apns: { priority: 1 } } }), BUNDLE, NOW)).priority, 1);
  });

  it('sends the absolute deadline in epoch seconds', () => {
    const r = ok(buildApnsRequest(content({ expiresAt: NOW + 90_500 }), BUNDLE, NOW));
    assert.equal(r.expiration, Math.floor((NOW + 90_500) / 1000));
  });

  it('ttl 0 sends apns-expiration 0 (one attempt, not stored)', () => {
    assert.equal(ok(buildApnsRequest(content({ expiresAt: NOW - 5 }, { ttl: 0 }), BUNDLE, NOW)).expiration, 0);
  });

  it('refuses an already expired message without the network', () => {
    for (const expiresAt of [NOW - 1, NOW]) {
      const r = buildApnsRequest(content({ expiresAt }), BUNDLE, NOW);
      assert.equal(!r.ok && r.outcome.kind === 'expired' && r.outcome.reason.code, EXPIRED_CODE);
    }
  });

  it('uses the collapse key, up to 64 bytes', () => {
    assert.equal(ok(buildApnsRequest(content({}, { collapseKey: 'order-42' }), BUNDLE, NOW)).collapseId, 'order-42');
    assert.equal(ok(buildApnsRequest(content({}, { collapseKey: 'x'.repeat(64) }), BUNDLE, NOW)).collapseId, 'x'.repeat(64));
    assert.equal(failCode(buildApnsRequest(content({}, { collapseKey: 'x'.repeat(65) }), BUNDLE, NOW)), 'BadCollapseId');
    // 22 × 3-byte characters = 66 bytes though only 22 characters
    assert.equal(failCode(buildApnsRequest(content({}, { collapseKey: '€'.repeat(22) }), BUNDLE, NOW)), 'BadCollapseId');
    assert.equal('collapseId' in ok(buildApnsRequest(content(), BUNDLE, NOW)), false);
  });

  it('overrides.apns.collapseId wins over the collapse key', () => {
    const r = ok(buildApnsRequest(content({ overrides: { apns: { collapseId: 'c2' } } }, { collapseKey: 'c1' }), BUNDLE, NOW));
    assert.equal(r.collapseId, 'c2');
  });
});

describe('buildApnsRequest: payload', () => {
  it('builds the alert, sound, badge, image and click action', () => {
    const r = ok(
      buildApnsRequest(
        content({ notification: { title: 'T', body: 'B', sound: 'default', badge: 3, image: 'https://img/x.png', clickAction: 'app://orders/42' } }),
        BUNDLE,
        NOW,
      ),
    );
    assert.deepEqual(r.payload.aps, { alert: { title: 'T', body: 'B' }, sound: 'default', badge: 3, 'mutable-content': 1 });
    assert.equal(r.payload.relay_image, 'https://img/x.png');
    assert.equal(r.payload.relay_click, 'app://orders/42');
    assert.equal((r.payload.aps as Record<string, unknown>).category, undefined);
  });

  it('merges data at the top level and always carries relay_id', () => {
    const r = ok(buildApnsRequest(content({ data: { orderId: '42', nested: { a: 1 }, relay_id: 'spoof', aps: { badge: 99 } } }), BUNDLE, NOW));
    assert.equal(r.payload.orderId, '42');
    assert.deepEqual(r.payload.nested, { a: 1 });
    assert.equal(r.payload.relay_id, 'msg-1');
    assert.deepEqual(r.payload.aps, { alert: { title: 'Hello', body: 'World' } });
    assert.equal(r.body, JSON.stringify(r.payload));
    assert.equal(r.bytes, Buffer.byteLength(r.body));
  });

  it('voip carries no alert, only data', () => {
    const r = ok(buildApnsRequest(content({ data: { callId: 'c1' } }, { pushType: 'voip' }), BUNDLE, NOW));
    assert.equal(r.payload.aps, undefined);
    assert.deepEqual(r.payload, { callId: 'c1', relay_id: 'msg-1' });
  });

  it('widgets send content-changed; liveactivity gets a timestamp and overrides', () => {
    assert.deepEqual(ok(buildApnsRequest(content({}, { pushType: 'widgets' }), BUNDLE, NOW)).payload.aps, { 'content-changed': true });
    const la = ok(
      buildApnsRequest(content({ overrides: { apns: { aps: { event: 'update', 'content-state': { score: 2 } } } } }, { pushType: 'liveactivity' }), BUNDLE, NOW),
    );
    assert.deepEqual(la.payload.aps, {
      timestamp: NOW / 1000,
      alert: { title: 'Hello', body: 'World' },
      event: 'update',
      'content-state': { score: 2 },
    });
  });

  it('applies overrides: topic, push type, aps deep merge with null delete, extra payload keys', () => {
    const r = ok(
      buildApnsRequest(
        content({
          notification: { title: 'T', body: 'B', sound: 'default' },
          data: { a: '1' },
          overrides: {
            apns: {
              topic: 'com.other.app',
              pushType: 'alert',
              aps: { alert: { subtitle: 'S' }, sound: null, 'thread-id': 'th', 'interruption-level': 'time-sensitive' },
              payload: { a: '2', extra: true },
            },
          },
        }),
        BUNDLE,
        NOW,
      ),
    );
    assert.equal(r.topic, 'com.other.app');
    assert.deepEqual(r.payload.aps, { alert: { title: 'T', body: 'B', subtitle: 'S' }, 'thread-id': 'th', 'interruption-level': 'time-sensitive' });
    assert.equal(r.payload.a, '2');
    assert.equal(r.payload.extra, true);
    assert.equal(r.payload.relay_id, 'msg-1');
  });

  it('overrides.apns.pushType changes the topic suffix', () => {
    const r = ok(buildApnsRequest(content({ overrides: { apns: { pushType: 'voip' } } }), BUNDLE, NOW));
    assert.equal(r.topic, `${BUNDLE}.voip`);
  });

  it('malformed overrides are refused by the channel schema the API checks them with', () => {
    for (const apns of [{ priority: 7 }, { payload: { relay_id: 'x' } }, { nope: 1 }]) {
      assert.equal(apnsModule.overridesSchema.safeParse(apns).success, false, JSON.stringify(apns));
    }
  });

  it('enforces 4096 bytes, and 5120 for voip', () => {
    const sized = (bytes: number, pushType: 'alert' | 'voip') => {
      const empty = ok(buildApnsRequest(content({ data: { pad: '' } }, { pushType }), BUNDLE, NOW)).bytes;
      return buildApnsRequest(content({ data: { pad: 'x'.repeat(bytes - empty) } }, { pushType }), BUNDLE, NOW);
    };
    assert.equal(ok(sized(4096, 'alert')).bytes, 4096);
    assert.equal(failCode(sized(4097, 'alert')), 'PayloadTooLarge');
    assert.equal(ok(sized(5120, 'voip')).bytes, 5120);
    assert.equal(failCode(sized(5121, 'voip')), 'PayloadTooLarge');
  });
});

describe('apnsOverridesSchema', () => {
  it('accepts the documented shape and rejects the rest', () => {
    assert.equal(apnsOverridesSchema.safeParse({ topic: 't', pushType: 'voip', priority: 5, collapseId: 'c', aps: { a: 1 }, payload: { b: 2 } }).success, true);
    assert.equal(apnsOverridesSchema.safeParse({ pushType: 'nope' }).success, false);
    assert.equal(apnsOverridesSchema.safeParse({ collapseId: 'x'.repeat(65) }).success, false);
    assert.equal(apnsOverridesSchema.safeParse({ payload: { aps: {} } }).success, false);
    assert.equal(apnsOverridesSchema.safeParse({ headers: {} }).success, false);
  });
});

describe('mergeAps', () => {
  it('merges objects, replaces other values, deletes on null', () => {
    assert.deepEqual(mergeAps({ a: { x: 1, y: 2 }, b: [1], c: 1 }, { a: { y: 3 }, b: [2], c: null, d: 'n' }), { a: { x: 1, y: 3 }, b: [2], d: 'n' });
  });
});

describe('isApnsTokenSyntax', () => {
  it('accepts hex bytes only', () => {
    assert.equal(isApnsTokenSyntax('a'.repeat(64)), true);
    assert.equal(isApnsTokenSyntax('AB'.repeat(50)), true);
    assert.equal(isApnsTokenSyntax(''), false);
    assert.equal(isApnsTokenSyntax('abc'), false);
    assert.equal(isApnsTokenSyntax('zz'.repeat(32)), false);
    assert.equal(isApnsTokenSyntax('ab/../cd'), false);
  });
});

describe('classifyApnsResult', () => {
  const failure = (status: number, reason: string, extra: Record<string, unknown> = {}) =>
    classifyApnsResult({ device: 'aa', 'apns-id': 'id-1', status, response: { reason, ...extra } });

  it('200 → sent with the apns-id', () => {
    assert.deepEqual(classifyApnsResult({ device: 'aa', 'apns-id': 'id-1' }), { kind: 'sent', providerId: 'id-1' });
    assert.deepEqual(classifyApnsResult({ device: 'aa' }), { kind: 'sent' });
  });

  for (const [status, reason] of [
    [410, 'Unregistered'],
    [410, 'ExpiredToken'],
    [400, 'BadDeviceToken'],
    [400, 'DeviceTokenNotForTopic'],
    [400, 'MissingDeviceToken'],
  ] as const) {
    it(`${status} ${reason} → invalid with evidence`, () => {
      const o = failure(status, reason, status === 410 ? { timestamp: 1_700_000_000_123 } : {});
      assert.equal(o.kind, 'invalid');
      assert.equal(o.kind === 'invalid' && o.reason.code, reason);
      const ev = o.kind === 'invalid' ? o.reason.evidence : undefined;
      assert.equal(ev?.status, status);
      assert.equal(ev?.reason, reason);
      assert.equal(ev?.apnsId, 'id-1');
      if (status === 410) assert.equal(ev?.timestamp, 1_700_000_000_123);
    });
  }

  for (const [status, reason] of [
    [429, 'TooManyRequests'],
    [500, 'InternalServerError'],
    [503, 'ServiceUnavailable'],
    [503, 'Shutdown'],
    [400, 'IdleTimeout'],
  ] as const) {
    it(`${status} ${reason} → retry without afterMs`, () => {
      const o = failure(status, reason);
      assert.equal(o.kind, 'retry');
      assert.equal(o.kind === 'retry' && o.reason.code, reason);
      assert.equal(o.kind === 'retry' && o.afterMs, undefined);
    });
  }

  it('429 TooManyProviderTokenUpdates → retry after 60 s', () => {
    const o = failure(429, 'TooManyProviderTokenUpdates');
    assert.equal(o.kind, 'retry');
    assert.equal(o.kind === 'retry' && o.afterMs, TOO_MANY_TOKEN_UPDATES_DELAY_MS);
    assert.equal(TOO_MANY_TOKEN_UPDATES_DELAY_MS, 60_000);
  });

  for (const [status, reason] of [
    [403, 'ExpiredProviderToken'],
    [403, 'InvalidProviderToken'],
    [403, 'MissingProviderToken'],
    [403, 'BadCertificate'],
    [403, 'BadCertificateEnvironment'],
    [403, 'BadEnvironmentKeyIdInToken'],
    [403, 'BadEnvironmentKeyInToken'],
    [403, 'UnrelatedKeyIdInToken'],
    [403, 'Forbidden'],
    [400, 'TopicDisallowed'],
    [400, 'BadTopic'],
    [400, 'MissingTopic'],
    [400, 'InvalidPushType'],
    [400, 'BadCollapseId'],
    [400, 'BadPriority'],
    [400, 'BadExpirationDate'],
    [400, 'BadMessageId'],
    [400, 'PayloadEmpty'],
    [400, 'DuplicateHeaders'],
    [404, 'BadPath'],
    [405, 'MethodNotAllowed'],
    [413, 'PayloadTooLarge'],
  ] as const) {
    it(`${status} ${reason} → failed`, () => {
      const o = failure(status, reason);
      assert.equal(o.kind, 'failed');
      assert.equal(o.kind === 'failed' && o.reason.code, reason);
      assert.equal(o.kind === 'failed' && o.reason.evidence?.status, status);
    });
  }

  it('node-apn shapes: 403 ExpiredProviderToken as an error, 500 with a dropped body', () => {
    const e = classifyApnsResult({ device: 'aa', status: 403, error: new Error('ExpiredProviderToken') });
    assert.equal(e.kind, 'failed');
    assert.equal(e.kind === 'failed' && e.reason.code, 'ExpiredProviderToken');
    const f = classifyApnsResult({ device: 'aa', status: 500, error: new Error('Error 500, stream ended unexpectedly') });
    assert.equal(f.kind, 'retry');
    assert.equal(f.kind === 'retry' && f.reason.code, 'InternalServerError');
  });

  it('transport errors (no status) → retry', () => {
    for (const [msg, code] of [
      ['apn write failed: The pending stream has been canceled (caused by: connect ECONNREFUSED 127.0.0.1:1)', 'TransportError'],
      ['apn write timeout', 'Timeout'],
      ['apn write aborted', 'TransportError'],
      ['stream ended unexpectedly with status null and empty body', 'TransportError'],
    ]) {
      const o = classifyApnsResult({ device: 'aa', error: new Error(msg) });
      assert.equal(o.kind, 'retry', msg);
      assert.equal(o.kind === 'retry' && o.reason.code, code);
      assert.equal(o.kind === 'retry' && o.afterMs, undefined);
    }
    const gw = classifyApnsResult({ device: 'aa', error: new Error('stream ended unexpectedly with status 502 and empty body') });
    assert.equal(gw.kind, 'retry');
    assert.equal(gw.kind === 'retry' && gw.reason.evidence?.status, 502);
  });

  it('unknown reasons fall back on the status', () => {
    assert.equal(failure(502, 'BadGateway').kind, 'retry');
    assert.equal(failure(418, 'Teapot').kind, 'failed');
    assert.equal(failure(410, 'SomethingNew').kind, 'invalid');
    const o = classifyApnsResult({ device: 'aa', status: 504, response: {} });
    assert.equal(o.kind, 'retry');
    assert.equal(o.kind === 'retry' && o.reason.code, 'HTTP504');
  });
});

describe('Semaphore', () => {
  it('hands permits out in FIFO order and never over-issues', async () => {
    const s = new Semaphore(2);
    assert.equal(s.acquire(), undefined);
    assert.equal(s.acquire(), undefined);
    const order: number[] = [];
    const w1 = (s.acquire() as Promise<void>).then(() => order.push(1));
    const w2 = (s.acquire() as Promise<void>).then(() => order.push(2));
    assert.equal(s.inUse, 2);
    s.release();
    await w1;
    assert.deepEqual(order, [1]);
    s.release();
    await w2;
    assert.deepEqual(order, [1, 2]);
    assert.equal(s.inUse, 2);
    s.release();
    s.release();
    assert.equal(s.inUse, 0);
  });
});

describe('credentials', () => {
  const p8 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const token = { teamId: 'TEAM123456', keyId: 'KEY1234567', key: p8, bundleId: BUNDLE, production: false };

  it('accepts token auth and names the bad field', () => {
    assert.equal(apnsCredentialSchema.safeParse(token).success, true);
    const bad = apnsCredentialSchema.safeParse({ ...token, teamId: 'short' });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues.map((i) => i.path.join('.')), ['teamId']);
    const missing = apnsCredentialSchema.safeParse({ key: p8, bundleId: BUNDLE, production: true });
    assert.deepEqual(missing.error?.issues.map((i) => i.path.join('.')).sort(), ['keyId', 'teamId']);
    const path = apnsCredentialSchema.safeParse({ ...token, key: '/etc/passwd' });
    assert.deepEqual(path.error?.issues.map((i) => i.path.join('.')), ['key']);
  });

  it('checkCredential parses the key', () => {
    apnsModule.checkCredential!(token);
    assert.throws(() => apnsModule.checkCredential!({ ...token, key: '-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----' }), (e: unknown) => e instanceof CredentialError && e.path === 'key');
    assert.throws(() => apnsModule.checkCredential!({ ...token, key: rsa }), (e: unknown) => e instanceof CredentialError && e.path === 'key');
  });

  it('describe shows no key material', () => {
    const d = apnsModule.describe(token);
    assert.deepEqual(d, { auth: 'token', teamId: 'TEAM123456', keyId: 'KEY1234567', bundleId: BUNDLE, production: false });
    assert.equal(JSON.stringify(d).includes('PRIVATE'), false);
  });

  /** A self-signed certificate carrying the Apple Push Services extension of `env`. */
  function appleCert(env: 'sandbox' | 'production'): { cert: string; key: string } {
    const dir = mkdtempSync(join(tmpdir(), 'relay-apns-cert-'));
    try {
      const oid = env === 'sandbox' ? '1.2.840.113635.100.6.3.1' : '1.2.840.113635.100.6.3.2';
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '2',
        '-subj', `/CN=Apple Push Services: ${BUNDLE}/UID=${BUNDLE}`, '-addext', `${oid}=DER:05:00`,
      ], { cwd: dir, stdio: 'pipe' });
      return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('certificate auth: schema, key/cert match, environment, describe', () => {
    const sandbox = appleCert('sandbox');
    const production = appleCert('production');
    const cred = { cert: sandbox.cert, key: sandbox.key, bundleId: BUNDLE, production: false };
    assert.equal(apnsCredentialSchema.safeParse(cred).success, true);
    assert.equal(apnsCredentialSchema.safeParse({ ...cred, teamId: 'TEAM123456' }).success, false);
    apnsModule.checkCredential!(cred);
    apnsModule.checkCredential!({ ...cred, cert: production.cert, key: production.key, production: true });
    const throwsAt = (c: typeof cred, path: string) =>
      assert.throws(() => apnsModule.checkCredential!(c), (e: unknown) => e instanceof CredentialError && e.path === path);
    throwsAt({ ...cred, production: true }, 'production');
    throwsAt({ ...cred, key: production.key }, 'key');
    throwsAt({ ...cred, key: rsa }, 'key');
    throwsAt({ ...cred, cert: '-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----' }, 'cert');
    const d = apnsModule.describe(cred);
    assert.equal(d.auth, 'certificate');
    assert.match(String(d.subject), /Apple Push Services/);
    assert.deepEqual(d.environments, ['sandbox']);
    assert.equal(typeof d.validTo, 'string');
    assert.equal(JSON.stringify(d).includes('PRIVATE'), false);
  });
});
