import { DateTime, IANAZone } from 'luxon';

/** Time-zone arithmetic for schedules, quiet hours and the per-day cap, on Luxon (tz database via Intl). */

/** A stored zone that is not a valid IANA name (registered before validation) counts as `fallback`. */
export function zoneOr(tz: string | null | undefined, fallback: string): string {
  return tz && IANAZone.isValidZone(tz) ? tz : fallback;
}

/** The instant a wall-clock time (`2026-12-24T09:00`) happens in `zone`; a DST gap moves it forward. */
export function wallTimeIn(localTime: string, zone: string): number {
  return DateTime.fromISO(localTime, { zone }).toMillis();
}

/** The device-local calendar day, `YYYY-MM-DD`. */
export function localDay(at: number, zone: string): string {
  return DateTime.fromMillis(at, { zone }).toISODate()!;
}

const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * When `at` falls inside the quiet hours in `zone`, the instant they end; else null. A window
 * like 22:00–08:00 wraps past midnight.
 */
export function quietUntil(at: number, zone: string, quiet: { start: string; end: string }): number | null {
  const local = DateTime.fromMillis(at, { zone });
  const now = local.hour * 60 + local.minute;
  const start = minutes(quiet.start);
  const end = minutes(quiet.end);
  if (start === end) return null;
  const inside = start < end ? now >= start && now < end : now >= start || now < end;
  if (!inside) return null;
  let until = local.set({ hour: Math.floor(end / 60), minute: end % 60, second: 0, millisecond: 0 });
  if (until.toMillis() <= at) until = until.plus({ days: 1 });
  return until.toMillis();
}
