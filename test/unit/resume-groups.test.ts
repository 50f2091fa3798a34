import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resumeGroups } from '../../src/db/deliveries-repo.js';

test('untouched rows of an earlier page run regroup by their lease and channel, in id order', () => {
  const l1 = new Date(1_000_000);
  const l2 = new Date(2_000_000);
  const groups = resumeGroups([
    { id: '12', channel: 'apns', lease_until: l1 },
    { id: '9', channel: 'apns', lease_until: l1 },
    { id: '10', channel: 'self', lease_until: l1 },
    { id: '100', channel: 'apns', lease_until: l2 },
    { id: '11', channel: null, lease_until: l1 },
  ]);
  assert.deepEqual(
    groups.map((g) => [g.channel, g.leasedUntil, g.ids]),
    [
      ['apns', 1_000_000, ['9', '12']],
      ['self', 1_000_000, ['10']],
      ['apns', 2_000_000, ['100']],
    ],
  );
});
