import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Outcome } from '../../providers/types.js';
import { notifyIdFrom } from '../../providers/shared/ids.js';
import honor, {
  buildHonorBody,
  classifyHonorAnswer,
  honorCredentialSchema,
  honorOverridesSchema,
  isHonorAuthRejected,
  parseHonorReceipt,
} from '../../providers/honor.js';
import { validateHonorBody } from '../mocks/vendors/honor.js';
import { codeOf, FIXED_NOW, http, kinds, netErr, orderContentAt } from '../helpers/vendor-fixtures.js';

const NOW = FIXED_NOW;
const content = orderContentAt(NOW);

// ---------------------------------------------------------------------------------------------

describe('honor: body', () => {
  const cred = { appId: '104433299', clientId: 'c', clientSecret: 's' };
  it('builds a camelCase notification message the mock accepts', () => {
    const body = buildHonorBody(content({ options: { ttl: 3600, priority: 'high', collapseKey: 'k', category: 'marketing' } }), ['t1'], cred, NOW)!;
    assert.equal(validateHonorBody(body), undefined);
    const a = body.android as Record<string, any>;
    assert.deepEqual(body.token, ['t1']);
    assert.equal(JSON.parse(body.data as string).relay_id, 'm-1');
    assert.equal(a.ttl, '3600s');
    assert.equal(a.biTag, 'm-1');
    assert.equal(a.notification.importance, 'LOW');
    assert.deepEqual(a.notification.clickAction, { type: 1, intent: 'app://orders/42' });
    assert.equal(a.notification.notifyId, notifyIdFrom('k'));
    assert.equal(a.notification.tag, 'k');
  });
  it('data-only, expiry, overrides', () => {
    const d = buildHonorBody(content({ notification: undefined }), ['t'], cred, NOW)!;
    assert.equal(validateHonorBody(d), undefined);
    assert.equal((d.android as any).notification, undefined);
    assert.equal(buildHonorBody(content({ expiresAt: NOW }), ['t'], cred, NOW), undefined);
    const o = buildHonorBody(content({ overrides: { honor: { importance: 'NORMAL', targetUserType: 1, android: { notification: { style: 1 } } } } }), ['t'], cred, NOW)!;
    assert.equal((o.android as any).targetUserType, 1);
    assert.equal((o.android as any).notification.importance, 'NORMAL');
    assert.equal((o.android as any).notification.style, 1);
    assert.equal(honorOverridesSchema.safeParse({ importance: 'HIGH' }).success, false);
  });
  it('credential schema and describe', () => {
    assert.equal(honorCredentialSchema.safeParse(cred).success, true);
    assert.equal(honorCredentialSchema.safeParse({ appId: '1', clientSecret: 's' }).success, false);
    const d = honor.describe({ ...cred, clientSecret: 'secret!' });
    assert.deepEqual(d, { appId: '104433299', clientId: 'c' });
    assert.equal(honor.qps?.(cred), 3000);
  });
});

describe('honor: answer classification', () => {
  it('code 200 (int or string) with expireTokens / failTokens', () => {
    const body = (code: unknown) => ({ code, message: 'ok', data: { sendResult: true, requestId: 'H1', expireTokens: ['b'], failTokens: ['c'] } });
    for (const code of [200, '200']) {
      const out = classifyHonorAnswer(http(200, body(code)), ['a', 'b', 'c']);
      assert.deepEqual(kinds(out), ['sent', 'invalid', 'retry']);
      assert.deepEqual(out[0], { kind: 'sent', providerId: 'H1' });
      assert.equal(codeOf(out[1]), 'expireTokens');
      assert.equal(codeOf(out[2]), 'failTokens');
    }
  });
  const table: Array<[string, number, Record<string, unknown>, Outcome['kind'], string]> = [
    ['auth after refresh', 401, { code: 80200003, message: 'expired' }, 'failed', '80200003'],
    ['rate limited', 429, { code: 429, message: 'slow down' }, 'retry', '429'],
    ['server error', 500, { code: 500, message: 'oops' }, 'retry', '500'],
    ['503 in body', 200, { code: 503, message: 'busy' }, 'retry', '503'],
    ['too large', 400, { code: 80300008, message: 'big' }, 'failed', '80300008'],
    ['bad request', 400, { code: 80100001, message: 'bad' }, 'failed', '80100001'],
    ['sendResult false', 200, { code: 200, data: { sendResult: false, requestId: 'x' } }, 'retry', 'sendResult_false'],
  ];
  for (const [name, status, body, kind, code] of table) {
    it(`${name} → ${kind}`, () => {
      const out = classifyHonorAnswer(http(status, body, { 'retry-after': '3' }), ['a', 'b']);
      assert.deepEqual(kinds(out), [kind, kind]);
      assert.equal(codeOf(out[0]), code);
      if (status === 429) assert.equal((out[0] as { afterMs?: number }).afterMs, 3000);
    });
  }
  it('auth rejection detection and network errors', () => {
    assert.equal(isHonorAuthRejected(http(401, {})), true);
    assert.equal(isHonorAuthRejected(http(200, { code: 80200003 })), true);
    assert.equal(isHonorAuthRejected(http(200, { code: 200 })), false);
    assert.deepEqual(kinds(classifyHonorAnswer(netErr, ['a'])), ['retry']);
  });
});

describe('honor: receipts', () => {
  const req = (rawBody: string) => ({ headers: {}, rawBody, contentType: 'application/json' });
  it('40000002 (and 0) → delivered', () => {
    const body = { statuses: [{ token: 't', biTag: 'm-1', status: 40000002, timestamp: 1700000000000, requestId: 'H1' }, { token: 'u', status: 7 }] };
    assert.deepEqual(parseHonorReceipt(req(JSON.stringify(body))), [{ event: 'delivered', providerId: 'H1', messageId: 'm-1', token: 't', at: 1700000000000 }]);
  });
  it('malformed bodies throw', () => {
    assert.throws(() => parseHonorReceipt(req('<xml/>')), /honor receipt/);
    assert.throws(() => parseHonorReceipt(req('[]')), /honor receipt/);
  });
});

// ---------------------------------------------------------------------------------------------
