import type { Redis } from 'ioredis';
import { chinaDay } from '../providers/shared/china-time.js';
import { MARKETING_CATEGORIES } from '../providers/shared/message-class.js';
import { MARKETING_DAILY_CAPS, type Channel } from '../providers/channels.js';
import type { PushContent } from '../providers/types.js';

/**
 * Vendors cap marketing-class (资讯营销 / 公信 / 运营) notifications per device per day and silently
 * drop or refuse the rest (vendors.md limits): counting here means Relay does not spend requests
 * and quota on messages the vendor will refuse. Service-class messages are uncapped.
 */
export { MARKETING_DAILY_CAPS } from '../providers/channels.js';

export function isMarketing(content: PushContent): boolean {
  return (MARKETING_CATEGORIES as readonly string[]).includes(content.options.category ?? '');
}

export class MarketingCaps {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly caps: Partial<Record<Channel, number>> = MARKETING_DAILY_CAPS,
  ) {}

  /**
   * Counts one marketing message for each token and returns, per token, whether it is still
   * within the vendor's daily cap. One pipelined round trip per batch.
   */
  async admit(appId: string, channel: Channel, tokens: readonly string[], now = Date.now()): Promise<boolean[]> {
    const cap = this.caps[channel];
    if (cap === undefined || tokens.length === 0) return tokens.map(() => true);
    const day = chinaDay(now);
    const pipe = this.redis.pipeline();
    for (const token of tokens) {
      const key = `${this.prefix}:cap:${appId}:${channel}:${day}:${token}`;
      pipe.incr(key);
      pipe.expire(key, 36 * 3600);
    }
    const res = (await pipe.exec()) ?? [];
    return tokens.map((_, i) => Number(res[i * 2]?.[1] ?? 0) <= cap);
  }
}
