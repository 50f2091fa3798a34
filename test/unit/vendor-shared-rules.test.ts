import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import meizuModule from '../../providers/meizu.js';
import oppoModule from '../../providers/oppo.js';
import { msUntilChinaMidnight } from '../../providers/shared/china-time.js';
import { CredentialError } from '../../providers/types.js';
import vivoModule from '../../providers/vivo.js';

const NOW = Date.UTC(2025, 0, 10, 4, 0, 0); // 12:00 in China

describe('shared small rules', () => {
  it('daily quotas reset at 00:00 China time', () => {
    assert.equal(msUntilChinaMidnight(Date.UTC(2025, 0, 1, 15, 59, 59)), 1000);
    assert.equal(msUntilChinaMidnight(Date.UTC(2025, 0, 1, 16, 0, 0)), 86_400_000);
    assert.equal(msUntilChinaMidnight(NOW), 12 * 3_600_000);
  });
});

describe('credentials', () => {
  it('schemas take exactly the SPEC fields plus documented optional ones', () => {
    assert.ok(oppoModule.credentialSchema.safeParse({ appKey: 'k', masterSecret: 's' }).success);
    assert.equal(oppoModule.credentialSchema.safeParse({ appKey: 'k' }).success, false);
    assert.ok(vivoModule.credentialSchema.safeParse({ appId: '1', appKey: 'k', appSecret: 's', categoryMap: { im: { category: 'IM' } } }).success);
    assert.equal(vivoModule.credentialSchema.safeParse({ appId: '1', appKey: 'k' }).success, false);
    assert.ok(meizuModule.credentialSchema.safeParse({ appId: '1', appSecret: 's' }).success);
    assert.equal(meizuModule.credentialSchema.safeParse({ appId: '1', appSecret: 's', categoryMap: { im: { category: 'im' } } }).success, false);
  });
  it('describe never shows secrets; receipt URLs lose their query', () => {
    const url = 'https://relay.example.com/v1/receipts/x/a?secret=topsecret';
    const shown = [
      oppoModule.describe({ appKey: 'k', masterSecret: 'MS', callbackUrl: url }),
      vivoModule.describe({ appId: '1', appKey: 'k', appSecret: 'AS', callbackUrl: url }),
      meizuModule.describe({ appId: '1', appSecret: 'ZS', callbackUrl: url }),
    ];
    for (const s of shown) {
      const text = JSON.stringify(s);
      assert.ok(!/MS|AS|ZS|topsecret/.test(text), text);
    }
  });
  it('receipt URLs over the vendor limit are refused', () => {
    const long = `https://relay.example.com/${'x'.repeat(200)}`;
    assert.throws(() => oppoModule.checkCredential!({ appKey: 'k', masterSecret: 's', callbackUrl: long }), CredentialError);
    assert.throws(() => vivoModule.checkCredential!({ appId: '1', appKey: 'k', appSecret: 's', callbackUrl: long }), CredentialError);
    assert.throws(() => meizuModule.checkCredential!({ appId: '1', appSecret: 's', callbackUrl: long }), CredentialError);
  });
  it('qps defaults and overrides', () => {
    assert.equal(oppoModule.qps!({ appKey: 'k', masterSecret: 's' }), 5000);
    assert.equal(vivoModule.qps!({ appId: '1', appKey: 'k', appSecret: 's' }), 3000);
    assert.equal(meizuModule.qps!({ appId: '1', appSecret: 's', qps: 50 }), 50);
  });
});
