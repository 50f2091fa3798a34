import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LEASE_MARGIN_MS, howToTake } from '../../workers/send.js';

const now = 1_000_000_000;
const job = (leasedUntil: number | undefined, attemptsMade = 0, stalledCounter = 0) => ({
  data: leasedUntil === undefined ? {} : { leasedUntil },
  attemptsMade,
  stalledCounter,
});

test('a first run inside the router lease only reads its rows', () => {
  assert.deepEqual(howToTake(job(now + LEASE_MARGIN_MS + 1), now), { read: true, ownLease: true, lostAttempt: false });
});

test('a first run too close to the lease end claims, taking its own rows back', () => {
  assert.deepEqual(howToTake(job(now + LEASE_MARGIN_MS), now), { read: false, ownLease: true, lostAttempt: false });
  assert.deepEqual(howToTake(job(now - 1), now), { read: false, ownLease: true, lostAttempt: false });
});

test('a re-run of a leased job (failed or stalled) claims and counts the attempt the dead run may have made', () => {
  const until = now + 10 * LEASE_MARGIN_MS;
  assert.deepEqual(howToTake(job(until, 1, 0), now), { read: false, ownLease: true, lostAttempt: true });
  assert.deepEqual(howToTake(job(until, 0, 1), now), { read: false, ownLease: true, lostAttempt: true });
});

test('jobs the router did not lease to (retries, fallbacks, sweeps) claim as usual', () => {
  assert.deepEqual(howToTake(job(undefined), now), { read: false, ownLease: false, lostAttempt: false });
  assert.deepEqual(howToTake(job(undefined, 3, 1), now), { read: false, ownLease: false, lostAttempt: false });
});

test('a job the reconciliation queued after Redis lost its jobs takes the rows back and counts the lost attempt', () => {
  assert.deepEqual(howToTake({ data: { reclaimed: true }, attemptsMade: 0, stalledCounter: 0 }, now), { read: false, ownLease: true, lostAttempt: true });
});
