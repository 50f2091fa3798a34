/** The device-authenticated calls to Relay's REST API (SPEC §5): client events and the inbox. */

export class RelayHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    url: string,
  ) {
    super(`Relay API ${status} for ${url}${body ? `: ${body.slice(0, 200)}` : ''}`);
    this.name = 'RelayHttpError';
  }
}

export type FetchLike = (url: string, init: {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: unknown;
}) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>;

export interface DeviceHttp {
  apiBase: string;
  deviceId: string;
  password: string;
  fetch: FetchLike;
  timeoutMs: number;
}

/** `Authorization: Device <deviceId>:<password>` — how a device (not an app server) authenticates. */
export function deviceAuthorization(deviceId: string, password: string): string {
  return `Device ${deviceId}:${password}`;
}

/** One JSON request; resolves with the parsed body (undefined when empty), throws RelayHttpError on non-2xx. */
export async function deviceRequest(http: DeviceHttp, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const url = http.apiBase.replace(/\/+$/, '') + path;
  const headers: Record<string, string> = {
    authorization: deviceAuthorization(http.deviceId, http.password),
    accept: 'application/json',
  };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const ctrl = typeof AbortController === 'function' ? new AbortController() : undefined;
  const timer = ctrl ? setTimeout(() => ctrl.abort(), http.timeoutMs) : undefined;
  try {
    const res = await http.fetch(url, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(ctrl ? { signal: ctrl.signal } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new RelayHttpError(res.status, text, url);
    return text ? (JSON.parse(text) as unknown) : undefined;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
