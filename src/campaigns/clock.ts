/**
 * The time campaigns are scheduled by, and quota days end by (src/quota-days.ts). Production
 * reads the system clock; tests move it (a `localTime` campaign over forty zones, a weekly cron,
 * the next China midnight) instead of sleeping for hours.
 */
export class Clock {
  private offset = 0;
  private frozen: number | undefined;

  now(): number {
    return this.frozen ?? Date.now() + this.offset;
  }

  /** Jumps to `ms` and keeps running from there. */
  set(ms: number): void {
    this.frozen = undefined;
    this.offset = ms - Date.now();
  }

  /** Stops at `ms` until the next set/freeze/advance. */
  freeze(ms: number): void {
    this.frozen = ms;
  }

  advance(ms: number): void {
    if (this.frozen !== undefined) this.frozen += ms;
    else this.offset += ms;
  }
}
