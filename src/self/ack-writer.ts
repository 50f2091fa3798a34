import type { Logger } from 'pino';
import type { DeliveriesRepo, DeviceEvent } from '../db/deliveries-repo.js';

export interface AckWriterOptions {
  /** Longest an ack waits before it is written. */
  intervalMs?: number;
  /** Acks that trigger a write at once. */
  maxBatch?: number;
}

/**
 * Device acks (PUBACK → delivered), control-topic reports (opened) and refusals (failed) batched
 * into one `applyEvents` statement per app every few milliseconds, instead of one write per ack.
 * Matching is by message id and device on any channel (channel null), so the PUBACK of a self copy
 * also confirms a delivery the ack-timeout fallback moved to FCM. An ack lost to a crash leaves the
 * row `sent`: the message is handed out again on the next connect and the SDK drops the repeat.
 */
export class AckWriter {
  private buffer = new Map<string, DeviceEvent[]>();
  private size = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly intervalMs: number;
  private readonly maxBatch: number;

  constructor(
    private readonly deliveries: DeliveriesRepo,
    private readonly logger: Logger,
    opts: AckWriterOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 20;
    this.maxBatch = opts.maxBatch ?? 500;
  }

  add(appId: string, event: DeviceEvent): void {
    const list = this.buffer.get(appId);
    if (list) list.push(event);
    else this.buffer.set(appId, [event]);
    if (++this.size >= this.maxBatch) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  /** Writes everything buffered so far; resolves once it (and any earlier write) is done. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.size === 0) return this.writing;
    const batch = this.buffer;
    this.buffer = new Map();
    this.size = 0;
    // Writes are chained: an ack is never applied before an earlier one of the same device.
    this.writing = this.writing.then(() => this.write(batch));
    return this.writing;
  }

  private async write(batch: Map<string, DeviceEvent[]>): Promise<void> {
    for (const [appId, events] of batch) {
      // A refusal ends only the self copy: a delivery the ack timeout moved to a vendor stands.
      const failed = events.some((e) => e.event === 'failed');
      if (!failed) {
        await this.apply(appId, null, events);
        continue;
      }
      await this.apply(appId, null, events.filter((e) => e.event !== 'failed'));
      await this.apply(appId, 'self', events.filter((e) => e.event === 'failed'));
    }
  }

  private async apply(appId: string, channel: string | null, events: DeviceEvent[]): Promise<void> {
    if (events.length === 0) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deliveries.applyEvents(appId, channel, events);
        return;
      } catch (err) {
        if (attempt >= 3) {
          this.logger.error({ err, appId, acks: events.length }, 'self channel: acks could not be written (the messages stay sent and are handed out again)');
          return;
        }
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
