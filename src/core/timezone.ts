import { IANAZone } from 'luxon';

/**
 * Whether `name` is an IANA time zone this runtime knows (Luxon asks Intl, which carries the
 * tz database: https://moment.github.io/luxon/#/zones?id=iana-support). Fixed offsets such as
 * `+08:00` are refused: they do not follow daylight saving time, so "9 am local" would drift.
 */
export function isIanaZone(name: string): boolean {
  return IANAZone.isValidZone(name);
}
