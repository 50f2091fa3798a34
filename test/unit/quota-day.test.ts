import assert from 'node:assert/strict';
import { test } from 'node:test';
import { quotaDay } from '../../src/core/outcome.js';
import { decide } from '../../src/core/retry.js';

const policy = { maxAttempts: 3, type: 'exponential' as const, baseDelayMs: 1000, maxDelayMs: 60_000 };

test("a vendor's daily-total refusal fails the delivery `quota` at once, keeping the vendor's code and the reset", () => {
  const resetAt = Date.parse('2026-12-07T16:00:00Z');
  const outcome = quotaDay({ code: '10070', message: '超过当日推送总量', evidence: { status: 200 } }, resetAt);
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.kind === 'failed' && outcome.quotaResetAt, resetAt);
  const d = decide(outcome, 1, policy, Date.now(), Date.now() + 3_600_000);
  assert.equal(d.status, 'failed', 'never queued for after midnight');
  assert.ok(d.status === 'failed');
  assert.equal(d.error.code, 'quota');
  assert.deepEqual(d.error.evidence, { status: 200, vendorCode: '10070', resetAt });
  assert.match(d.error.message, /used up until 2026-12-07T16:00:00.000Z/);
});
