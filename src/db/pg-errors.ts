/**
 * Whether a PostgreSQL error is about the data a statement carried rather than the database's
 * state: SQLSTATE class 22 (data exception, e.g. a value jsonb refuses, 22P05) or 23 (integrity
 * constraint violation). Such a statement fails again for the same rows, and without the bad row
 * would succeed; a timeout, cancel or lost connection (classes 57, 08, 53...) says nothing about
 * the rows. https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}
