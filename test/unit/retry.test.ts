import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failed, invalid, retry, sent } from '../../providers/types.js';
import { backoffDelay, decide, type RetryPolicy } from '../../src/core/retry.js';

const policy: RetryPolicy = { maxAttempts: 4, type: 'exponential', baseDelayMs: 1000, maxDelayMs: 8000 };
const reason = { code: 'ServiceUnavailable', message: 'busy' };

test('exponential backoff doubles per attempt, with jitter in the upper half, capped', () => {
  assert.equal(backoffDelay(policy, 1, 0, () => 1), 1000);
  assert.equal(backoffDelay(policy, 1, 0, () => 0), 500);
  assert.equal(backoffDelay(policy, 3, 0, () => 1), 4000);
  assert.equal(backoffDelay(policy, 10, 0, () => 1), 8000);
  assert.equal(backoffDelay({ ...policy, type: 'fixed' }, 5, 0, () => 0), 1000);
});

test('Retry-After is a floor', () => {
  assert.equal(backoffDelay(policy, 1, 30_000, () => 0), 30_000);
});

test('outcomes map to delivery states', () => {
  assert.deepEqual(decide(sent('p1'), 1, policy, 0, 1e9), { status: 'sent', providerId: 'p1' });
  assert.deepEqual(decide(invalid(reason), 1, policy, 0, 1e9), { status: 'invalid', error: reason });
  assert.deepEqual(decide(failed(reason), 1, policy, 0, 1e9), { status: 'failed', error: reason });
  assert.deepEqual(decide(retry(reason, 2000), 1, policy, 0, 1e9, () => 0), { status: 'queued', retryAt: 2000, error: reason });
});

test('retries stop at maxAttempts (failed) and at the TTL (expired)', () => {
  const last = decide(retry(reason), 4, policy, 0, 1e9);
  assert.equal(last.status, 'failed');
  assert.match((last as { error: { message: string } }).error.message, /gave up after 4 attempts/);
  assert.equal(decide(retry(reason, 5000), 1, policy, 0, 4000).status, 'expired');
});
