import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Channel } from '../../providers/types.js';
import { preferredChannels, routeDevice, type RoutableDevice } from '../../src/routing.js';

const all = new Set<Channel>(['apns', 'fcm', 'huawei', 'xiaomi', 'webpush']);
const dev = (d: Partial<RoutableDevice>): RoutableDevice => ({ platform: 'android', brand: null, tokens: {}, online: false, ...d });

test('iOS goes to APNs, web to Web Push', () => {
  assert.deepEqual(routeDevice(dev({ platform: 'ios', tokens: { apns: 'a1' } }), { configured: all }), { channel: 'apns', token: 'a1' });
  // An app that registered its iOS devices through Firebase: FCM carries them; APNs still wins when both exist.
  assert.deepEqual(routeDevice(dev({ platform: 'ios', tokens: { fcm: 'f1' } }), { configured: all }), { channel: 'fcm', token: 'f1' });
  assert.deepEqual(routeDevice(dev({ platform: 'ios', tokens: { apns: 'a1', fcm: 'f1' } }), { configured: all }), { channel: 'apns', token: 'a1' });
  assert.deepEqual(routeDevice(dev({ platform: 'web', tokens: { webpush: '{}' } }), { configured: all }), { channel: 'webpush', token: '{}' });
});

test('Android: online → self, else its vendor with credentials, else FCM', () => {
  const tokens = { huawei: 'h1', fcm: 'f1' };
  assert.deepEqual(routeDevice(dev({ brand: 'huawei', tokens, online: true }), { configured: all }), { channel: 'self', token: null });
  assert.deepEqual(routeDevice(dev({ brand: 'Huawei', tokens }), { configured: all }), { channel: 'huawei', token: 'h1' });
  assert.deepEqual(routeDevice(dev({ brand: 'huawei', tokens }), { configured: new Set<Channel>(['fcm']) }), { channel: 'fcm', token: 'f1' });
  assert.deepEqual(routeDevice(dev({ brand: 'samsung', tokens }), { configured: all }), { channel: 'fcm', token: 'f1' });
  assert.deepEqual(preferredChannels(dev({ brand: 'oppo', online: true })), ['self', 'oppo', 'fcm']);
});

test('no usable token, or tokens only for channels without credentials', () => {
  assert.deepEqual(routeDevice(dev({ platform: 'ios' }), { configured: all }), { channel: null, reason: 'NoActiveToken' });
  assert.deepEqual(routeDevice(dev({ tokens: { fcm: 'f' } }), { configured: new Set() }), { channel: null, reason: 'NoChannel' });
});

test('options.channels pins the order and excludes the rest', () => {
  const d = dev({ brand: 'xiaomi', tokens: { xiaomi: 'x', fcm: 'f' } });
  assert.deepEqual(routeDevice(d, { configured: all, pinned: ['fcm', 'xiaomi'] }), { channel: 'fcm', token: 'f' });
  assert.deepEqual(routeDevice(d, { configured: all, pinned: ['apns'] }), { channel: null, reason: 'NoActiveToken' });
  // A pinned self channel serves an offline device too: the gateway keeps it until TTL.
  assert.deepEqual(routeDevice(d, { configured: all, pinned: ['self'] }), { channel: 'self', token: null });
  assert.deepEqual(routeDevice(dev({ platform: 'ios', tokens: { apns: 'a' } }), { configured: all, pinned: ['self', 'apns'] }), { channel: 'apns', token: 'a' });
});

test('per-app Android strategies (Getui-style)', () => {
  const d = dev({ brand: 'vivo', tokens: { vivo: 'v', fcm: 'f' }, online: true });
  const configured = new Set<Channel>(['vivo', 'fcm']);
  assert.deepEqual(routeDevice(d, { configured }), { channel: 'self', token: null });
  assert.deepEqual(routeDevice(d, { configured, strategy: 'vendor-first' }), { channel: 'vivo', token: 'v' });
  assert.deepEqual(routeDevice({ ...d, tokens: { fcm: 'f' } }, { configured, strategy: 'vendor-first' }), { channel: 'self', token: null });
  assert.deepEqual(preferredChannels(d, 'vendor-only'), ['vivo', 'fcm']);
});
