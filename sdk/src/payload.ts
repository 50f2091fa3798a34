/**
 * Turns what arrives on any channel into one shape: the self channel's JSON
 * (`{"type":"push","id","seq","notification","data","expiresAt"}`), an inbox item, an FCM /
 * vendor data map carrying `relay_id`, or an APNs userInfo with a top-level `relay_id`.
 */

export interface Notification {
  title?: string;
  body?: string;
  image?: string;
  sound?: string;
  badge?: number;
  clickAction?: string;
  [key: string]: unknown;
}

export interface Incoming {
  type: 'push' | 'revoke';
  id: string;
  seq?: number;
  notification?: Notification;
  data?: Record<string, unknown>;
  expiresAt?: number;
}

/** The key Relay's providers put Relay's message id under (providers/shared/relay-keys.ts). */
export const RELAY_ID_KEY = 'relay_id';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
const num = (v: unknown): number | undefined => {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
};

/** Keys Relay's providers add next to the app's data (never the app's own: the API reserves them). */
const RELAY_KEYS: readonly string[] = [RELAY_ID_KEY, 'relay_type', 'relay_image', 'relay_click'];

function withoutRelayKeys(o: Obj, drop: readonly string[] = []): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (!RELAY_KEYS.includes(k) && !drop.includes(k)) out[k] = v;
  return out;
}

function apsAlert(aps: unknown): Notification | undefined {
  if (!isObj(aps)) return undefined;
  const alert = aps.alert;
  if (typeof alert === 'string') return { body: alert };
  if (isObj(alert)) {
    const n: Notification = {};
    if (typeof alert.title === 'string') n.title = alert.title;
    if (typeof alert.body === 'string') n.body = alert.body;
    return n;
  }
  return undefined;
}

export function normalize(input: unknown): Incoming | null {
  if (!isObj(input)) return null;
  const data = isObj(input.data) ? input.data : undefined;
  const topLevelRelayId = str(input[RELAY_ID_KEY]);
  const id = topLevelRelayId ?? str(data?.[RELAY_ID_KEY]) ?? str(input.id);
  if (!id) return null;
  const type = input.type === 'revoke' || data?.relay_type === 'revoke' ? 'revoke' : 'push';
  const out: Incoming = { type, id };
  const seq = num(input.seq);
  if (seq !== undefined) out.seq = seq;
  if (type === 'revoke') return out;
  const notification = isObj(input.notification) ? ({ ...input.notification } as Notification) : apsAlert(input.aps);
  if (notification) {
    // APNs carries the image and click action as top-level keys (providers/apns.ts).
    const image = str(input.relay_image);
    const click = str(input.relay_click);
    if (image && notification.image === undefined) notification.image = image;
    if (click && notification.clickAction === undefined) notification.clickAction = click;
    out.notification = notification;
  }
  if (data) out.data = withoutRelayKeys(data);
  else if (topLevelRelayId) out.data = withoutRelayKeys(input, ['aps', 'id', 'seq', 'type', 'notification', 'expiresAt']);
  const expiresAt = num(input.expiresAt);
  if (expiresAt !== undefined) out.expiresAt = expiresAt;
  return out;
}

/** UTF-8 text of an MQTT payload (a Buffer in Node, a Uint8Array-based Buffer polyfill in browsers). */
export function payloadText(payload: unknown): string {
  if (typeof payload === 'string') return payload;
  if (payload instanceof Uint8Array && typeof TextDecoder === 'function') return new TextDecoder().decode(payload);
  return String(payload);
}
