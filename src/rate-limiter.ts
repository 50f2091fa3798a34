import type { RedisClient } from './redis.js';

/**
 * A per-credential send budget in Redis, shared by every worker process: at most `perSecond`
 * tokens in any one-second window. A batch larger than the whole budget still goes out alone in
 * an empty window, so a small quota never blocks a batch forever.
 */
const SCRIPT = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used > 0 and used + n > tonumber(ARGV[2]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = 1000 end
  return ttl
end
redis.call('INCRBY', KEYS[1], n)
if used == 0 then redis.call('PEXPIRE', KEYS[1], 1000) end
return 0`;

export class RateLimiter {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    redis.defineCommand('relayTakeBudget', { numberOfKeys: 1, lua: SCRIPT });
  }

  /** Takes `n` from the budget; returns 0, or how many ms to wait before trying again. */
  async take(key: string, n: number, perSecond: number): Promise<number> {
    const cmd = (this.redis as unknown as { relayTakeBudget(k: string, n: number, max: number): Promise<number> }).relayTakeBudget;
    return Number(await cmd.call(this.redis, `${this.prefix}:rate:${key}`, n, perSecond));
  }
}
