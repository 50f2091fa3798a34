import { z } from 'zod';

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: what a PostgreSQL timestamp and an ISO string both hold. */
const MIN_MS = -62_135_596_800_000;
const MAX_MS = 253_402_300_799_999;

/**
 * An RFC 3339 instant with its offset, within the years 0001–9999 once in UTC: zod's datetime
 * accepts year 0000 (and an offset can carry 0001-01-01 into year 0), which PostgreSQL refuses
 * with an error that would otherwise surface as a 500.
 */
export function instantSchema() {
  return z.iso.datetime({ offset: true }).refine((s) => {
    const t = Date.parse(s);
    return t >= MIN_MS && t <= MAX_MS;
  }, 'a time between the years 0001 and 9999');
}
