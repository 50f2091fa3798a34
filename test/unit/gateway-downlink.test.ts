import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate, type IPublishPacket } from 'mqtt-packet';
import { signDeviceToken } from '../../src/core/device-token.js';
import { deviceTopic } from '../../src/gateway/acl.js';
import { deviceTokenAuthenticator } from '../../src/gateway/auth.js';
import { Downlink, pushBody, pushPacketBytes } from '../../src/gateway/downlink.js';

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

test('pushPacketBytes: the size of the PUBLISH the gateway writes (MQTT 5; 3.1.1 is smaller)', () => {
  // Around every remaining-length boundary (1 → 2 → 3 → 4 bytes) and the 256 KiB default.
  const sizes = [0, 100, 110, 16_350, 16_370, 262_100, 262_144, 2_097_100, 2_097_140];
  for (const deviceId of ['d', 'device-with-a-long-id-ü']) {
    for (const n of sizes) {
      const body = pushBody('msg_1', 7, Date.now() + 60_000, { data: { b: 'x'.repeat(n) } });
      const pkt: IPublishPacket = { cmd: 'publish', topic: deviceTopic(deviceId), payload: Buffer.from(body), qos: 1, dup: true, retain: false, messageId: 65535 };
      const v5 = generate({ ...pkt, properties: { payloadFormatIndicator: true, messageExpiryInterval: 4_294_967_295 } }, { protocolVersion: 5 }).length;
      const v4 = generate(pkt, { protocolVersion: 4 }).length;
      const want = pushPacketBytes(deviceId, Buffer.byteLength(body));
      assert.equal(want, v5, `${deviceId}, ${n}`);
      assert.ok(v4 < want);
    }
  }
  assert.equal(pushBody('m-1', 4, 1234, { data: { k: 'v' }, seq: 9 }), Downlink.push({ id: 'm-1', seq: 4, payload: { data: { k: 'v' }, seq: 9 }, expiresAt: 1234 }).body);
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
