import { buildBody, KIND_PUSH, KIND_REVOKE } from '../core/self-wire.js';
import type { DeliverMessage, PendingDelivery } from './types.js';

// The self channel's wire format is shared with the provider (providers/self.ts sizes a push
// before it is sent): it lives in core/self-wire.ts, which neither side owns.
export { DEFAULT_MAX_PACKET_BYTES, KIND_PUSH, KIND_REVOKE, pushBody, pushPacketBytes } from '../core/self-wire.js';

/**
 * One downlink held by a session: queued (body set) or in flight (body released). The JSON body
 * is built when the message is accepted, so a payload that cannot be serialised fails the
 * caller's deliver() and never a session.
 */
export class Downlink {
  written = false;
  /** The JSON text devices receive; null once written. */
  body: string | null;
  constructor(
    readonly kind: number,
    readonly id: string,
    readonly seq: number,
    /** Epoch ms; 0 = never expires (revokes). */
    readonly expiresAt: number,
    payload: Record<string, unknown> | null,
    public dup: boolean,
  ) {
    this.body = buildBody(kind, id, seq, expiresAt, payload);
  }

  static push(msg: DeliverMessage): Downlink {
    return new Downlink(KIND_PUSH, msg.id, msg.seq, msg.expiresAt, msg.payload, msg.dup === true);
  }

  static revoke(id: string, seq: number): Downlink {
    return new Downlink(KIND_REVOKE, id, seq, 0, null, false);
  }

  expired(now: number): boolean {
    return this.expiresAt > 0 && this.expiresAt <= now;
  }

  /** MQTT 5 Message Expiry Interval: the remaining TTL in whole seconds, at least 1. */
  remainingSec(now: number): number {
    return Math.max(1, Math.ceil((this.expiresAt - now) / 1000));
  }

  pending(): PendingDelivery {
    return {
      kind: this.kind === KIND_REVOKE ? 'revoke' : 'push',
      id: this.id,
      seq: this.seq,
      expiresAt: this.expiresAt,
      written: this.written,
    };
  }
}
