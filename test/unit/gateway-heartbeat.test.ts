import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  clampKeepAlive,
  defaultAdviseKeepAlive,
  effectiveIntervalSec,
  idleLimitMs,
  parseHeartbeatReport,
  parseJsonObject,
} from '../../src/gateway/heartbeat.js';

test('dead detection follows the report, else the keep alive, else the server max idle', () => {
  assert.equal(effectiveIntervalSec(60, 0), 60);
  assert.equal(effectiveIntervalSec(60, 300), 300);
  assert.equal(effectiveIntervalSec(0, 0), 0);
  assert.equal(idleLimitMs(60, 0, 1800), 90_000);
  assert.equal(idleLimitMs(60, 270, 1800), 405_000);
  assert.equal(idleLimitMs(60, 1, 1800), 1500);
  assert.equal(idleLimitMs(0, 0, 1800), 1_800_000);
  assert.equal(idleLimitMs(0, 10, 1800), 15_000);
  assert.equal(idleLimitMs(3, 0, 1800), 4500);
});

test('default advice: the request within [1, 1740], 270 when none', () => {
  const a = (requestedSec: number) => defaultAdviseKeepAlive({ appId: 'a', deviceId: 'd', requestedSec });
  assert.equal(a(0), 270);
  assert.equal(a(60), 60);
  assert.equal(a(1740), 1740);
  assert.equal(a(7200), 1740);
});

test('advice is forced into a 16-bit keep alive', () => {
  assert.equal(clampKeepAlive(0), 0);
  assert.equal(clampKeepAlive(-5), 0);
  assert.equal(clampKeepAlive(Number.NaN), 0);
  assert.equal(clampKeepAlive(0.2), 1);
  assert.equal(clampKeepAlive(269.6), 270);
  assert.equal(clampKeepAlive(1e9), 65535);
});

test('heartbeat reports: intervalSec is an integer in [1, 65535]; network and state optional', () => {
  assert.deepEqual(parseHeartbeatReport({ intervalSec: 330, network: 'cmcc-4g', state: 'stable' }), {
    intervalSec: 330,
    network: 'cmcc-4g',
    state: 'stable',
  });
  assert.deepEqual(parseHeartbeatReport({ intervalSec: 60, state: 'weird', network: '' }), { intervalSec: 60 });
  for (const bad of [{}, { intervalSec: 0 }, { intervalSec: 1.5 }, { intervalSec: '60' }, { intervalSec: 70000 }]) {
    assert.equal(parseHeartbeatReport(bad), null, JSON.stringify(bad));
  }
});

test('payloads must be JSON objects', () => {
  assert.deepEqual(parseJsonObject(Buffer.from('{"a":1}')), { a: 1 });
  assert.equal(parseJsonObject('[1]'), null);
  assert.equal(parseJsonObject('null'), null);
  assert.equal(parseJsonObject('nope'), null);
  assert.equal(parseJsonObject(Buffer.from([0xff, 0xfe])), null);
});
