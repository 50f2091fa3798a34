import type { AdviseInput } from './types.js';

/** MQTT [MQTT-3.1.2-24]: no packet for 1.5 × the keep alive means the connection is dead. */
export const GRACE_FACTOR = 1.5;
/** WeChat's minHeart: the starting interval when a device asks for nothing. */
export const DEFAULT_ADVICE_SEC = 270;
/** The SDK's ceiling (just under China Telecom's ~28 min NAT timeout). */
export const MAX_ADVICE_SEC = 1740;
/** Keep alive and reports are 16-bit seconds on the wire. */
export const MAX_KEEPALIVE_SEC = 0xffff;

/** The interval dead detection follows: a device report beats the MQTT keep alive; 0 = none. */
export function effectiveIntervalSec(keepAliveSec: number, reportedSec: number): number {
  return reportedSec > 0 ? reportedSec : keepAliveSec;
}

/** Milliseconds without any packet before the session is declared dead. */
export function idleLimitMs(keepAliveSec: number, reportedSec: number, maxIdleSec: number): number {
  const interval = effectiveIntervalSec(keepAliveSec, reportedSec);
  if (interval <= 0) return maxIdleSec * 1000;
  return Math.ceil(interval * GRACE_FACTOR * 1000);
}

/** Default advice: honour what the device asked for within [1, 1740] s; 270 s when it asked for 0. */
export function defaultAdviseKeepAlive(info: AdviseInput): number {
  if (info.requestedSec <= 0) return DEFAULT_ADVICE_SEC;
  return Math.min(info.requestedSec, MAX_ADVICE_SEC);
}

/** Forces an advice into a valid 16-bit keep alive (integer seconds, 0 allowed = no keep alive). */
export function clampKeepAlive(sec: number): number {
  if (!Number.isFinite(sec) || sec <= 0) return 0;
  return Math.min(MAX_KEEPALIVE_SEC, Math.max(1, Math.round(sec)));
}

export type HeartbeatState = 'probing' | 'stable' | 'backoff';

export interface HeartbeatReport {
  intervalSec: number;
  network?: string;
  state?: HeartbeatState;
}

const STATES: ReadonlySet<string> = new Set(['probing', 'stable', 'backoff']);

/**
 * Validates a `$relay/heartbeat` uplink: `{"intervalSec": N, "network"?: string, "state"?: …}`.
 * Returns null when intervalSec is not an integer in [1, 65535].
 */
export function parseHeartbeatReport(obj: Record<string, unknown>): HeartbeatReport | null {
  const n = obj.intervalSec;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_KEEPALIVE_SEC) return null;
  const report: HeartbeatReport = { intervalSec: n };
  if (typeof obj.network === 'string' && obj.network.length > 0 && obj.network.length <= 128) report.network = obj.network;
  if (typeof obj.state === 'string' && STATES.has(obj.state)) report.state = obj.state as HeartbeatState;
  return report;
}

/** A payload that is a JSON object, or null. */
export function parseJsonObject(payload: Buffer | string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
