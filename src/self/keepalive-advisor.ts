import type { RedisClient } from '../redis.js';
import type { Logger } from 'pino';
import { defaultAdviseKeepAlive, type AdviseInput } from '../gateway/index.js';

/** The SDK's (and WeChat's) starting interval: a device asking for it has learned nothing yet. */
const FRESH_DEVICE_SEC = 270;
const MAX_ADVICE_SEC = 1740;

export interface KeepAliveAdvisorOptions {
  /** Recent stable intervals kept per network. */
  samples?: number;
  /** Fewer samples than this: no advice from the network, the gateway's default. */
  minSamples?: number;
  /** How often a cached network's advice is re-read (other nodes learn too). */
  refreshMs?: number;
  /** A network nobody reported on for this long is forgotten. */
  retentionMs?: number;
  /** Networks cached in memory (least recently used dropped beyond). */
  maxNetworks?: number;
}

interface Cached {
  sec: number | null;
  at: number;
  loading: boolean;
}

/**
 * Server side of the smart heartbeat (README: Self-hosted channel; docs/self-channel.md): devices report on `$relay/heartbeat` the interval
 * they run at and whether it is `stable` (it survived the network's NAT). Stable intervals are
 * kept per network key in Redis (`<prefix>:hb:<network>`, the last N values, shared by every
 * gateway node) and their median becomes the keep-alive advised to a *fresh* device on that
 * network, which then starts its probe near the known limit instead of at 270 s. A device that
 * asks for its own interval (it remembers one for this network) keeps the default treatment.
 * The advice is synchronous (it goes into the CONNACK), so it is served from a cache that is
 * filled in the background: the first device on a network this node has not seen gets the default.
 */
export class KeepAliveAdvisor {
  private readonly cache = new Map<string, Cached>();
  /** Last stable interval recorded per online device, so a device's every beat is not a sample. */
  private readonly recorded = new Map<string, string>();
  private readonly samples: number;
  private readonly minSamples: number;
  private readonly refreshMs: number;
  private readonly retentionMs: number;
  private readonly maxNetworks: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly logger: Logger,
    opts: KeepAliveAdvisorOptions = {},
  ) {
    this.samples = opts.samples ?? 63;
    this.minSamples = opts.minSamples ?? 3;
    this.refreshMs = opts.refreshMs ?? 60_000;
    this.retentionMs = opts.retentionMs ?? 30 * 86_400_000;
    this.maxNetworks = opts.maxNetworks ?? 10_000;
  }

  key(network: string): string {
    return `${this.prefix}:hb:${network}`;
  }

  /** A heartbeat report. Only `stable` intervals teach anything; each device counts once per value. */
  async report(deviceKey: string, payload: Record<string, unknown>): Promise<void> {
    const { intervalSec, network, state } = payload;
    if (state !== 'stable' || typeof network !== 'string' || !network || network.length > 128) return;
    if (typeof intervalSec !== 'number' || !Number.isInteger(intervalSec) || intervalSec < 1 || intervalSec > 0xffff) return;
    const mark = `${network}\u0000${intervalSec}`;
    if (this.recorded.get(deviceKey) === mark) return;
    this.recorded.set(deviceKey, mark);
    const key = this.key(network);
    const res = await this.redis
      .multi()
      .lpush(key, String(intervalSec))
      .ltrim(key, 0, this.samples - 1)
      .pexpire(key, this.retentionMs)
      .lrange(key, 0, -1)
      .exec();
    const values = res?.[3]?.[1];
    if (Array.isArray(values)) this.store(network, this.statistic(values as string[]));
  }

  /** The device went offline: its next stable report counts again. */
  forget(deviceKey: string): void {
    this.recorded.delete(deviceKey);
  }

  /** `adviseKeepAlive` for the gateway. */
  readonly advise = (info: AdviseInput): number => {
    const fresh = info.requestedSec <= 0 || info.requestedSec === FRESH_DEVICE_SEC;
    if (!fresh || !info.network) return defaultAdviseKeepAlive(info);
    const learned = this.lookup(info.network);
    return learned ?? defaultAdviseKeepAlive(info);
  };

  /** The learned advice for a network, from the cache; starts a (re)load when missing or old. */
  lookup(network: string): number | null {
    const c = this.cache.get(network);
    const now = Date.now();
    if (!c || (now - c.at > this.refreshMs && !c.loading)) void this.load(network);
    return c?.sec ?? null;
  }

  /** Reads a network's samples from Redis into the cache. */
  async load(network: string): Promise<number | null> {
    const c = this.cache.get(network);
    if (c) c.loading = true;
    else this.store(network, null, true);
    try {
      const values = await this.redis.lrange(this.key(network), 0, -1);
      const sec = this.statistic(values);
      this.store(network, sec);
      return sec;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, network }, 'keep-alive advice: could not read the network’s samples');
      const entry = this.cache.get(network);
      if (entry) entry.loading = false;
      return entry?.sec ?? null;
    }
  }

  /** Median of the recent stable intervals, or null with too few samples. */
  private statistic(values: readonly string[]): number | null {
    const xs = values.map(Number).filter((x) => Number.isFinite(x) && x > 0).sort((a, b) => a - b);
    if (xs.length < this.minSamples) return null;
    const mid = xs.length >> 1;
    const median = xs.length % 2 ? xs[mid]! : Math.floor((xs[mid - 1]! + xs[mid]!) / 2);
    return Math.min(MAX_ADVICE_SEC, Math.max(1, Math.round(median)));
  }

  private store(network: string, sec: number | null, loading = false): void {
    this.cache.delete(network);
    this.cache.set(network, { sec, at: Date.now(), loading });
    if (this.cache.size > this.maxNetworks) this.cache.delete(this.cache.keys().next().value!);
  }
}
