import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate, parser as createParser, type Packet } from 'mqtt-packet';
import { ByteQueue, slimParser } from '../../src/gateway/byte-queue.js';

test('ByteQueue reads across appended chunks and consumes', () => {
  const q = new ByteQueue();
  q.append(Buffer.from([1, 2])).append(Buffer.from([3, 4, 5])).append(Buffer.alloc(0));
  assert.equal(q.length, 5);
  assert.equal(q.readUInt8(2), 3);
  assert.equal(q.readUInt16BE(1), 0x0203);
  assert.equal(q.readUInt32BE(1), 0x02030405);
  assert.deepEqual([...q.slice(1, 3)], [2, 3]);
  q.consume(2);
  assert.equal(q.length, 3);
  assert.equal(q.toString('hex', 0, 3), '030405');
  q.append(Buffer.from('ab'));
  assert.equal(q.toString('utf8', 3, 5), 'ab');
  q.consume(10);
  assert.equal(q.length, 0);
  assert.throws(() => q.readUInt8(0), RangeError);
});

test('a slimmed parser yields the same packets, whole or byte by byte', () => {
  const packets: Packet[] = [
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'd', clean: true, keepalive: 9, username: 'd', password: Buffer.from('p') },
    { cmd: 'publish', topic: '$relay/control', payload: Buffer.alloc(70_000, 0x61), qos: 1, messageId: 2, dup: false, retain: false },
    { cmd: 'pingreq' },
  ];
  const bytes = Buffer.concat(packets.map((p) => generate(p)));
  for (const step of [1, 1000, bytes.length]) {
    const p = slimParser(createParser({ protocolVersion: 4 }));
    const got: Packet[] = [];
    p.on('packet', (x) => got.push(x));
    for (let o = 0; o < bytes.length; o += step) p.parse(bytes.subarray(o, o + step));
    assert.deepEqual(got.map((x) => x.cmd), ['connect', 'publish', 'pingreq']);
    assert.equal((got[1] as { payload: Buffer }).payload.length, 70_000);
    assert.ok((p as unknown as { _list: unknown })._list instanceof ByteQueue, 'self-test passed and the queue is installed');
  }
});
