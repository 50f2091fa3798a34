import type { Redis } from 'ioredis';
import { failed, RELAY_CODES, type Channel, type Outcome, type Provider } from '../providers/types.js';
import type { ProviderSource } from '../workers/send.js';

/**
 * SMS costs money: each app sends at most SMS_DAILY_CAP per UTC day, counting every SMS handed
 * to the gateway (explicit sms pushes and top-ups alike). Counted per delivery, so a retry of an
 * SMS already admitted today is not counted again. The day's set of admitted deliveries is no
 * larger than the cap.
 */
const ADMIT = `
local out = {}
local cap = tonumber(ARGV[1])
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    out[#out + 1] = 1
  elseif redis.call('SCARD', KEYS[1]) < cap then
    redis.call('SADD', KEYS[1], ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return out`;

export class SmsDailyCap {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly cap: number,
  ) {}

  /** Per delivery id, whether it may be sent today. */
  async admit(appId: string, deliveryIds: readonly string[], now = Date.now()): Promise<boolean[]> {
    if (this.cap === 0 || deliveryIds.length === 0) return deliveryIds.map(() => true);
    const day = new Date(now).toISOString().slice(0, 10);
    const res = (await this.redis.eval(ADMIT, 1, `${this.prefix}:smscap:${appId}:${day}`, this.cap, 2 * 86_400, ...deliveryIds)) as number[];
    return deliveryIds.map((_, i) => res[i] === 1);
  }
}

/** The sms channel's providers behind the app's daily cap: over it, a target fails with SmsDailyCap. */
export function cappedSms(source: ProviderSource, cap: SmsDailyCap): ProviderSource {
  return {
    ...(source.qps ? { qps: (appId: string, channel: Channel) => source.qps!(appId, channel) } : {}),
    async get(appId, channel) {
      const provider = await source.get(appId, channel);
      if (!provider || cap.cap === 0) return provider;
      const capped: Provider = {
        channel: provider.channel,
        close: () => provider.close(),
        async send(content, targets) {
          const admitted = await cap.admit(appId, targets.map((t) => t.deliveryId));
          const sendable = targets.filter((_, i) => admitted[i]);
          const results = sendable.length > 0 ? await provider.send(content, sendable) : [];
          let k = 0;
          const over: Outcome = failed({ code: RELAY_CODES.smsDailyCap, message: `the app's SMS for today are used up (SMS_DAILY_CAP=${cap.cap})` });
          return admitted.map((ok) => (ok ? results[k++]! : over));
        },
      };
      return capped;
    },
  };
}
