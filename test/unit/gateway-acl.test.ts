import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONTROL_TOPIC,
  HEARTBEAT_TOPIC,
  SUB_CONTROL,
  SUB_DEVICE,
  SUB_HEARTBEAT,
  deviceTopic,
  grantedQos,
  isWildcard,
  subscriptionBit,
  uplinkKind,
} from '../../src/gateway/acl.js';

test('a device may subscribe to its own topic and the two $relay topics only', () => {
  assert.equal(deviceTopic('d-1'), 'devices/d-1');
  assert.equal(subscriptionBit('d-1', 'devices/d-1'), SUB_DEVICE);
  assert.equal(subscriptionBit('d-1', HEARTBEAT_TOPIC), SUB_HEARTBEAT);
  assert.equal(subscriptionBit('d-1', CONTROL_TOPIC), SUB_CONTROL);
  for (const t of ['devices/d-2', 'devices/d-1/x', 'devices/d-11', 'devices/d-', 'devices/+', 'devices/#', '#', '+/d-1', 'Devices/d-1', '$relay/#', '$relay/heartbeat/x', '', 'd-1']) {
    assert.equal(subscriptionBit('d-1', t), 0, t);
  }
});

test('wildcard characters in a device id never widen the grant', () => {
  assert.equal(subscriptionBit('+', 'devices/x'), 0);
  assert.equal(subscriptionBit('#', 'devices/a/b'), 0);
  assert.equal(subscriptionBit('a/b', 'devices/a/b'), SUB_DEVICE); // exact match only
});

test('wildcard filters are told apart (MQTT 5 refuses them with 0xA2, others with 0x87)', () => {
  for (const t of ['#', 'devices/#', 'devices/+', '+/d-1', '$relay/#', 'devices/+/x']) assert.equal(isWildcard(t), true, t);
  for (const t of ['devices/d-1', 'devices/d-2', '$relay/heartbeat', '', 'devices/d-1/x']) assert.equal(isWildcard(t), false, t);
});

test('granted QoS is capped at 1', () => {
  assert.equal(grantedQos(0), 0);
  assert.equal(grantedQos(1), 1);
  assert.equal(grantedQos(2), 1);
});

test('uplinks: $relay/heartbeat and $relay/control only', () => {
  assert.equal(uplinkKind('$relay/heartbeat'), 'heartbeat');
  assert.equal(uplinkKind('$relay/control'), 'control');
  for (const t of ['devices/d-1', '$relay/other', '$relay/control/x', '', '$SYS/x']) assert.equal(uplinkKind(t), null, t);
});
