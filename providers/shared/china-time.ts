/**
 * Vendor days (daily quotas, per-device caps) start at midnight in China: UTC+8, no daylight
 * saving (China has not observed DST since 1991).
 */
const CHINA_OFFSET_MS = 8 * 3_600_000;
const DAY_MS = 86_400_000;

/** Milliseconds until the next 00:00 in China, when vendors' daily quotas reset. */
export function msUntilChinaMidnight(now = Date.now()): number {
  return Math.floor((now + CHINA_OFFSET_MS) / DAY_MS + 1) * DAY_MS - CHINA_OFFSET_MS - now;
}

/** The vendor day `now` falls in, as `YYYY-MM-DD` in China time. */
export function chinaDay(now = Date.now()): string {
  return new Date(now + CHINA_OFFSET_MS).toISOString().slice(0, 10);
}

