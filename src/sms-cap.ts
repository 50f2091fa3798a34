import type { RedisClient } from './redis.js';
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

/** An app's own cap (its `smsDailyCap` setting), if it set one. */
export type AppSmsCap = (appId: string) => Promise<number | undefined>;

export class SmsDailyCap {
  private readonly appCaps = new Map<string, { cap: number | undefined; at: number }>();

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    /** SMS_DAILY_CAP: the operator's ceiling for every app; 0 sets none. */
    readonly cap: number,
    private readonly appCap: AppSmsCap = async () => undefined,
  ) {}

  /** The app's cap for today: its own setting under the operator's; 0 when there is none. Read at most every 10 s. */
  async capOf(appId: string): Promise<number> {
    let entry = this.appCaps.get(appId);
    if (!entry || Date.now() - entry.at > 10_000) {
      entry = { cap: await this.appCap(appId), at: Date.now() };
      if (this.appCaps.size > 10_000) this.appCaps.clear();
      this.appCaps.set(appId, entry);
    }
    const own = entry.cap;
    if (own === undefined) return this.cap;
    return this.cap === 0 ? own : Math.min(own, this.cap);
  }

  /** Per delivery id, whether it may be sent today, and the cap it was held to. */
  async admit(appId: string, deliveryIds: readonly string[], now = Date.now()): Promise<{ admitted: boolean[]; cap: number }> {
    const cap = await this.capOf(appId);
    if (cap === 0 || deliveryIds.length === 0) return { admitted: deliveryIds.map(() => true), cap };
    const day = new Date(now).toISOString().slice(0, 10);
    const res = (await this.redis.eval(ADMIT, 1, `${this.prefix}:smscap:${appId}:${day}`, cap, 2 * 86_400, ...deliveryIds)) as number[];
    return { admitted: deliveryIds.map((_, i) => res[i] === 1), cap };
  }
}

/** The sms channel's providers behind the app's daily cap: over it, a target fails with SmsDailyCap. */
export function cappedSms(source: ProviderSource, cap: SmsDailyCap): ProviderSource {
  return {
    ...(source.qps ? { qps: (appId: string, channel: Channel) => source.qps!(appId, channel) } : {}),
    async get(appId, channel) {
      const provider = await source.get(appId, channel);
      if (!provider) return provider;
      const capped: Provider = {
        channel: provider.channel,
        close: () => provider.close(),
        async send(content, targets) {
          const { admitted, cap: limit } = await cap.admit(appId, targets.map((t) => t.deliveryId));
          const sendable = targets.filter((_, i) => admitted[i]);
          const results = sendable.length > 0 ? await provider.send(content, sendable) : [];
          let k = 0;
          const over: Outcome = failed({ code: RELAY_CODES.smsDailyCap, message: `the app's ${limit} SMS for today are used up` });
          return admitted.map((ok) => (ok ? results[k++]! : over));
        },
      };
      return capped;
    },
  };
}
