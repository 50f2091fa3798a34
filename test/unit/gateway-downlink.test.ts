import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signDeviceToken } from '../../src/core/device-token.js';
import { deviceTokenAuthenticator } from '../../src/gateway/auth.js';
import { Downlink } from '../../src/gateway/downlink.js';

test('push body: type, id, seq, the payload, expiresAt; the gateway fields win', () => {
  const d = Downlink.push({
    id: 'm-1',
    seq: 4,
    payload: { notification: { title: 't' }, data: { k: 'v' }, id: 'spoof', type: 'x' },
    expiresAt: 1234,
  });
  assert.equal(d.body, '{"type":"push","id":"m-1","seq":4,"notification":{"title":"t"},"data":{"k":"v"},"expiresAt":1234}');
  assert.equal(d.dup, false);
  assert.equal(d.expired(1233), false);
  assert.equal(d.expired(1234), true);
  assert.equal(d.remainingSec(0), 2);
  assert.equal(d.remainingSec(1230), 1);
});

test('an unserialisable payload fails at acceptance', () => {
  assert.throws(() => Downlink.push({ id: 'm', seq: 1, payload: { n: 1n }, expiresAt: 1 }), TypeError);
});

test('revoke body and pending snapshot', () => {
  const r = Downlink.revoke('m-2', 9);
  assert.equal(r.body, '{"type":"revoke","id":"m-2","seq":9}');
  assert.equal(r.expired(Number.MAX_SAFE_INTEGER), false);
  assert.deepEqual(r.pending(), { kind: 'revoke', id: 'm-2', seq: 9, expiresAt: 0, written: false });
});

test('deviceTokenAuthenticator: client id = device id, username empty or equal, password signed', () => {
  const auth = deviceTokenAuthenticator('s3cret-s3cret-s3cret');
  const pw = Buffer.from(signDeviceToken('s3cret-s3cret-s3cret', 'app-1', 'd-1'));
  assert.deepEqual(auth('d-1', 'd-1', pw), { appId: 'app-1', deviceId: 'd-1' });
  assert.deepEqual(auth('d-1', undefined, pw), { appId: 'app-1', deviceId: 'd-1' });
  assert.equal(auth('d-2', 'd-2', pw), null);
  assert.equal(auth('d-1', 'someone', pw), null);
  assert.equal(auth('d-1', 'd-1', undefined), null);
  assert.equal(auth('d-1', 'd-1', Buffer.from('app-1.bad')), null);
  assert.equal(auth('', '', pw), null);
});
