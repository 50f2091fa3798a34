import type { Counts } from './types';

const nf = new Intl.NumberFormat('en-US');

export const num = (n: number | null | undefined) => (n === null || n === undefined ? '–' : nf.format(n));

/** A rate as the API gives it (0..1), shown as a percentage with one decimal; none is "–". */
export const pct = (r: number | null | undefined) => (r === null || r === undefined || !Number.isFinite(r) ? '–' : `${(r * 100).toFixed(1)} %`);

export const rate = (part: number | undefined, whole: number | undefined) => (whole ? (part ?? 0) / whole : null);

/** Counts are per current state: an opened delivery was sent and delivered too, so it counts at each step. */
export const delivered = (c: Counts) => (c.delivered ?? 0) + (c.opened ?? 0);
export const reached = (c: Counts) => (c.sent ?? 0) + delivered(c);

export const time = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '–');

/** A series key as a label: {channel: "apns", platform: "ios"} → "apns · ios". */
export const keyLabel = (key: Record<string, string | null>) => Object.values(key).map((v) => v ?? 'none').join(' · ') || 'all';
