import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signDeviceToken, verifyDeviceCredential, verifyDeviceToken } from '../../src/core/device-token.js';
import { deviceTokenAuthenticator } from '../../src/gateway/auth.js';

const S = 'unit-secret-0123456789';

test('device passwords carry the credential epoch; epoch 0 keeps the original two-part form', () => {
  const legacy = signDeviceToken(S, 'app-1', 'd-1');
  assert.equal(legacy.split('.').length, 2);
  assert.deepEqual(verifyDeviceCredential(S, 'd-1', legacy), { appId: 'app-1', epoch: '0' });
  const v = signDeviceToken(S, 'app-1', 'd-1', '1733500000000');
  assert.match(v, /^app-1\.1733500000000\.[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(verifyDeviceCredential(S, 'd-1', v), { appId: 'app-1', epoch: '1733500000000' });
  assert.equal(verifyDeviceToken(S, 'd-1', v), 'app-1');
});

test('a password is refused for another device, another epoch, a malformed epoch or another secret', () => {
  const v = signDeviceToken(S, 'app-1', 'd-1', '42');
  const mac = v.split('.')[2];
  assert.equal(verifyDeviceCredential(S, 'd-2', v), null);
  assert.equal(verifyDeviceCredential(S, 'd-1', `app-1.43.${mac}`), null);
  assert.equal(verifyDeviceCredential(S, 'd-1', `app-1.042.${mac}`), null);
  assert.equal(verifyDeviceCredential(S, 'd-1', `app-1.0.${mac}`), null, 'epoch 0 has only the two-part form');
  assert.equal(verifyDeviceCredential(S, 'd-1', `app-2.42.${mac}`), null);
  assert.equal(verifyDeviceCredential(`${S}x`, 'd-1', v), null);
  for (const bad of ['', '.', '..', 'app-1', 'app-1.', '.x', 'a.b.c.d', `app-1.42.${mac}x`]) assert.equal(verifyDeviceCredential(S, 'd-1', bad), null, bad);
});

test('the gateway authenticator checks the epoch against the current one, sync or async', async () => {
  const pw = Buffer.from(signDeviceToken(S, 'app-1', 'd-1', '7'));
  assert.deepEqual(deviceTokenAuthenticator(S)('d-1', 'd-1', pw), { appId: 'app-1', deviceId: 'd-1' });
  assert.deepEqual(deviceTokenAuthenticator(S, () => '7')('d-1', undefined, pw), { appId: 'app-1', deviceId: 'd-1' });
  assert.equal(deviceTokenAuthenticator(S, () => '8')('d-1', undefined, pw), null);
  assert.equal(deviceTokenAuthenticator(S, () => null)('d-1', undefined, pw), null, 'deleted device');
  assert.equal(await deviceTokenAuthenticator(S, async () => '8')('d-1', undefined, pw), null);
  assert.deepEqual(await deviceTokenAuthenticator(S, async () => '7')('d-1', undefined, pw), { appId: 'app-1', deviceId: 'd-1' });
  let asked = 0;
  assert.equal(deviceTokenAuthenticator(S, () => (asked++, '7'))('d-1', undefined, Buffer.from('app-1.7.forged')), null);
  assert.equal(asked, 0, 'a bad signature is refused without asking for the epoch (no I/O for garbage)');
});
