// The dashboard's only way to the server: the same /v1 REST API as any client, with the key the
// user typed. The key lives in sessionStorage (this tab, until it closes) and nowhere else.
const KEY = 'relay.key';
const APP = 'relay.app';

export const session = {
  get key(): string | null {
    return sessionStorage.getItem(KEY);
  },
  /** The app the operator token acts on (sent as X-Relay-App); unused for app keys. */
  get app(): string | null {
    return sessionStorage.getItem(APP);
  },
  signIn(key: string): void {
    sessionStorage.setItem(KEY, key);
  },
  setApp(app: string | null): void {
    if (app) sessionStorage.setItem(APP, app);
    else sessionStorage.removeItem(APP);
  },
  signOut(): void {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(APP);
  },
};

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface CallOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  body?: unknown;
  /** Overrides the stored key (the login form tries a key before keeping it). */
  key?: string;
  /** Sends no X-Relay-App even when one is chosen (operator-level calls). */
  noApp?: boolean;
}

export async function api<T>(path: string, opts: CallOptions = {}): Promise<T> {
  const key = opts.key ?? session.key;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  if (!opts.noApp && session.app) headers['x-relay-app'] = session.app;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method: opts.method ?? 'GET', headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  } catch {
    throw new ApiFailure(0, 'network', 'Relay did not answer: check that it is running and reachable.');
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiFailure(res.status, err?.code ?? 'http_error', err?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export const qs = (params: Record<string, string | number | undefined>) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
