/** Small readers for vendor receipt webhooks (headers, JSON bodies, timestamps). */

/** A header value from a `ReceiptRequest` (first value, case-insensitive). */
export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === want) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/** Parses a JSON receipt body, throwing a clear error that names the vendor when it is not JSON. */
export function parseJsonBody(raw: string, vendor: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new Error(`${vendor} receipt: body is not JSON (${(err as Error).message})`);
  }
}

/** Reads a timestamp a vendor sent (ms or s epoch, number or numeric string); undefined when absent. */
export function epochMs(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n <= 0) return undefined;
  return n < 1e12 ? n * 1000 : n;
}

