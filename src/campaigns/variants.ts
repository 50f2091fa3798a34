import { createHash } from 'node:crypto';

/**
 * Deterministic per device and campaign: the same device always draws the same variant and the
 * same side of the test slice, across re-runs of a page after a crash and across processes.
 * The two draws use different salts, so the test slice is not correlated with the variant.
 */
function unit(salt: string, campaignId: string, deviceId: string): number {
  return createHash('sha1').update(`${salt}\u0000${campaignId}\u0000${deviceId}`).digest().readUInt32BE(0) / 0x1_0000_0000;
}

export function pickVariant(variants: readonly { name: string; weight: number }[], campaignId: string, deviceId: string): string {
  const total = variants.reduce((s, v) => s + v.weight, 0);
  let x = unit('variant', campaignId, deviceId) * total;
  for (const v of variants) {
    if (x < v.weight) return v.name;
    x -= v.weight;
  }
  return variants[variants.length - 1]!.name;
}

/** Whether the device is in the A/B test slice of `percent` %. */
export function inTestSlice(percent: number, campaignId: string, deviceId: string): boolean {
  return unit('slice', campaignId, deviceId) * 100 < percent;
}
