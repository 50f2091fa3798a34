import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FairShare, PRIORITY_LIMIT } from '../../src/core/fair-share.js';

test('an app that queued little goes ahead of one that queued much; similar volumes share a level', () => {
  const f = new FairShare(500);
  const big = f.priorities('A:apns', Array.from({ length: 2000 }, () => 500), 0);
  assert.equal(big[0], 1, 'the first batch of anyone goes at the top level');
  assert.ok(big.every((p, i) => i === 0 || p >= big[i - 1]!), 'an app’s own jobs keep their order');
  assert.equal(big.at(-1), 1 + Math.floor(Math.log2(2000)), 'levels are logarithmic in the batches queued');
  const small = f.priorities('B:apns', [100], 1000);
  assert.ok(small[0]! < big[10]!, 'a small app overtakes the big one’s queued campaign');
  // A second big app climbs the same levels: the two interleave rather than one waiting for the other.
  const other = f.priorities('C:apns', Array.from({ length: 2000 }, () => 500), 1000);
  assert.deepEqual(other.slice(100), big.slice(100));
});

test('recent volume decays, so a campaign long past is not held against its app', () => {
  const f = new FairShare(500, 60_000);
  f.priorities('A:apns', Array.from({ length: 1000 }, () => 500), 0);
  assert.ok(f.priorities('A:apns', [500], 1000)[0]! > 5);
  assert.equal(f.priorities('A:apns', [500], 60 * 60_000)[0], 1);
  assert.ok(f.priorities('A:fcm', [500], 1000)[0] === 1, 'each channel is its own queue');
});

test('priorities stay within BullMQ’s range and memory stays bounded', () => {
  const f = new FairShare(1, 60_000, 3);
  assert.ok(f.priorities('A', [1e12, 1e12], 0).every((p) => p >= 1 && p <= PRIORITY_LIMIT));
  for (let i = 0; i < 10; i++) f.priorities(`k${i}`, [10], 0);
  assert.ok((f as unknown as { recent: Map<string, unknown> }).recent.size <= 3);
});
