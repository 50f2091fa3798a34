import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { RateLimiter } from '../../src/rate-limiter.js';
import { Isolation, REDIS_URL } from '../helpers/harness.js';

const iso = new Isolation();
const redis = new Redis(REDIS_URL);
after(async () => {
  redis.disconnect();
  await iso.drop();
});

test('per-credential budget: a window fills, the next caller is told how long to wait', async () => {
  const limiter = new RateLimiter(redis, iso.prefix);
  assert.equal(await limiter.take('app:huawei', 3, 5), 0);
  assert.equal(await limiter.take('app:huawei', 2, 5), 0);
  const wait = await limiter.take('app:huawei', 1, 5);
  assert.ok(wait > 0 && wait <= 1000, `told to wait ${wait} ms`);
  assert.equal(await limiter.take('app:xiaomi', 1, 5), 0, 'budgets are per key');
  // A batch larger than the whole budget still goes out alone in an empty window.
  assert.equal(await limiter.take('app:meizu', 50, 5), 0);
  await new Promise((r) => setTimeout(r, wait + 50));
  assert.equal(await limiter.take('app:huawei', 5, 5), 0, 'the next window has the full budget');
});
