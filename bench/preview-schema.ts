/**
 * The schema bench/preview.ts works in: a fresh `relay_pv_<random>`, or the one named by
 * `--reuse`/`--keep`. The name goes into SQL as is, and a reused schema's apps are deleted when
 * the device count differs, so only a name of the kind the bench creates is accepted: never
 * e.g. `public`, a real install's schema.
 */
export function previewSchema(values: { keep?: string; reuse?: string }, random: string): string {
  const schema = values.reuse ?? values.keep ?? `relay_pv_${random}`;
  if (!/^relay_pv_\w+$/.test(schema)) {
    throw new Error(`--keep/--reuse must name a schema this bench creates (relay_pv_ followed by letters, digits or _), not ${JSON.stringify(schema)}`);
  }
  return schema;
}
