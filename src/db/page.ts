/**
 * A page read with `LIMIT limit + 1`: the first `limit` rows, and the cursor of the last of them
 * when the extra row shows that more follow (null on the last page).
 */
export function pageOf<T>(rows: T[], limit: number, cursorOf: (last: T) => string): { items: T[]; next: string | null } {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items, next: more && items.length > 0 ? cursorOf(items[items.length - 1]!) : null };
}
