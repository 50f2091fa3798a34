import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { ReceiptRequest } from '../../../providers/types.js';
import {
  defaultBehavior,
  delay,
  fateOf,
  parseForm,
  requestFate,
  retryAfterHeader,
  sendJson,
  startRecordingServer,
  type MockBehavior,
  type MockServerOptions,
  type RecordedRequest,
} from './scaffold.js';

/**
 * A mock of Xiaomi MiPush (docs/providers/xiaomi.md): `POST /v3/message/regid` (and `/v2/message/regid`),
 * form-encoded, `Authorization: key=<AppSecret>`, and the recall `POST /v3/message/regid/revoke`
 * (docs/recall.md). Scripting as in the Huawei mock.
 *
 * Answers (XMERR codes, HTTP 200 with `result:"error"` unless noted):
 * - wrong / missing `key=` header → 22008 (illegal AppSecret) ❓ (HTTP status unverified; 200 here)
 * - wrong package → 22022; missing parameter → 10016; bad value → 10017; bad notify_id → 22103
 * - rate limit → 10027 (+ Retry-After when scripted); server error → HTTP 500 with 10001
 * - payload too large → 10018 ("request too long"); ❓ the byte limit is undocumented, 4096 here
 * - daily quota → 22101 ("too many notifications") ❓
 * - invalid regIds → listed in `data.bad_regids` (or `bad_regIds`, option) of an ok answer
 * - title / description counted in UTF-16 units; `extra.jobkey` ≤ 12 chars, not starting with `_`
 * - `authexp-…` / failFirst `authExpired` → 22008 (Xiaomi has no tokens to expire)
 */

export interface XiaomiMockOptions extends MockServerOptions {
  appSecret?: string;
  packageName?: string;
  /** ❓ regIds per request (default 100, the provider's safe choice). */
  maxRegIds?: number;
  /** ❓ `payload` byte limit (default 4096). */
  maxPayloadBytes?: number;
  /** Spelling of the bad-regId field (sources disagree ❓). Default `bad_regids`. */
  badRegIdsField?: 'bad_regids' | 'bad_regIds';
}

export interface XiaomiSendRecord {
  msgId: string;
  regIds: string[];
  fields: Record<string, string>;
}

/** One accepted `POST /v3/message/regid/revoke` (docs/recall.md). */
export interface XiaomiRevokeRecord {
  regIds: string[];
  notifyId: number;
  /** When the mock received it (ms since the epoch): rate tests count requests per window. */
  at?: number;
}

export interface XiaomiMock {
  /** Accepted revokes, in order. */
  revokes: XiaomiRevokeRecord[];
  port: number;
  url: string;
  appSecret: string;
  packageName: string;
  requests: RecordedRequest[];
  sends: XiaomiSendRecord[];
  setBehavior(b: Partial<MockBehavior>): void;
  /**
   * Xiaomi's answer once the app's daily total is used up (200001 "exceed quota, quota: <total>,
   * have acked: <delivered>", https://dev.mi.com/xiaomihyperos/documentation/detail?pId=1656):
   * every send after `total` accepted ones gets it; null lifts the cap.
   */
  setDailyTotal(total: number | null): void;
  resetBehavior(): void;
  /** Receipt callback as Xiaomi posts it: form field `data` = JSON keyed by msgId. `type` 1 delivered, 2 clicked, 16 invalid. */
  receiptFor(token: string | string[], opts?: { type?: number; timestamp?: number; msgId?: string; param?: string }): ReceiptRequest;
  close(): Promise<void>;
}

/** `extra.*` keys Xiaomi defines itself; any other `extra.<k>` is a custom extra (≤10, ≤1024 chars). */
const RESERVED_EXTRAS = new Set([
  'channel_id', 'channel_name', 'channel_description', 'notify_effect', 'intent_uri', 'web_uri', 'notify_foreground', 'sound_uri',
  'ticker', 'jobkey', 'only_send_once', 'flow_control', 'callback', 'callback.param', 'callback.type', 'locale', 'locale_not_in',
  'model', 'model_not_in', 'app_version', 'app_version_not_in', 'connpt',
]);

export async function startXiaomiMock(opts: XiaomiMockOptions = {}): Promise<XiaomiMock> {
  const appSecret = opts.appSecret ?? 'xm-app-secret';
  const packageName = opts.packageName ?? 'com.example.relay';
  const maxRegIds = opts.maxRegIds ?? 100;
  const maxPayload = opts.maxPayloadBytes ?? 4096;
  const badField = opts.badRegIdsField ?? 'bad_regids';
  const requests: RecordedRequest[] = [];
  const sends: XiaomiSendRecord[] = [];
  const lastByToken = new Map<string, XiaomiSendRecord>();
  let behavior = defaultBehavior();
  let dailyTotal: number | null = null;

  const error = (res: ServerResponse, code: number, description: string, status = 200, headers: Record<string, string> = {}) =>
    sendJson(res, status, { result: 'error', code, description, reason: description, trace_id: traceId() }, headers);

  const revokes: XiaomiRevokeRecord[] = [];

  /**
   * 消息撤回 by regId (docs/recall.md): form-encoded `registration_ids` (comma-joined),
   * `restricted_package_name` and `notify_id`, nothing else; the v1 path is retired (404).
   */
  const revoke = (req: RecordedRequest, res: ServerResponse) => {
    if (req.headers.authorization !== `key=${appSecret}`) return error(res, 22008, 'illegal AppSecret');
    if (!String(req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) return error(res, 10017, 'content type must be form-urlencoded');
    const f = parseForm(req.rawBody);
    const extra = [...f.keys()].filter((k) => !['registration_ids', 'restricted_package_name', 'notify_id'].includes(k));
    if (extra.length) return error(res, 10017, `unknown parameter(s): ${extra.join(', ')}`);
    const ids = (f.get('registration_ids') ?? '').split(',');
    if (!f.get('registration_ids') || ids.some((t) => t.trim() === '')) return error(res, 10016, 'registration_ids is required');
    if (ids.length > maxRegIds) return error(res, 10017, `at most ${maxRegIds} registration_ids per request`);
    if (f.get('restricted_package_name') !== packageName) return error(res, 22022, 'illegal package name');
    const notifyId = f.get('notify_id');
    if (notifyId === null || !/^\d+$/.test(notifyId) || Number(notifyId) > 2147483647) return error(res, 22103, 'illegal notify id');
    if (requestFate(ids, behavior) === 'serverError') return error(res, 10001, 'system error', 500);
    revokes.push({ regIds: ids, notifyId: Number(notifyId), at: Date.now() });
    return sendJson(res, 200, { result: 'ok', trace_id: traceId(), code: 0, description: '成功' });
  };

  const handler = async (req: RecordedRequest, res: ServerResponse) => {
    if (req.method === 'POST' && req.path === '/v3/message/regid/revoke') return revoke(req, res);
    if (req.method !== 'POST' || !/^\/v[23]\/message\/regid$/.test(req.path)) return sendJson(res, 404, { result: 'error', code: 404, description: 'not found' });
    if (behavior.sendDelayMs > 0) await delay(behavior.sendDelayMs);
    // The word `key` must be lowercase (Xiaomi's API doc).
    if (req.headers.authorization !== `key=${appSecret}`) return error(res, 22008, 'illegal AppSecret');
    if (!String(req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) return error(res, 10017, 'content type must be form-urlencoded');
    const f = parseForm(req.rawBody);
    const problem = validateXiaomiForm(f, { packageName, maxRegIds, maxPayload });
    if (problem) return error(res, problem.code, problem.description);
    const regIds = (f.get('registration_id') ?? '').split(',');

    if (dailyTotal !== null && sends.length >= dailyTotal) return error(res, 200001, `exceed quota, quota: ${dailyTotal}, have acked: ${sends.length}`);
    switch (requestFate(regIds, behavior)) {
      case 'authExpired':
        return error(res, 22008, 'illegal AppSecret');
      case 'serverError':
        return error(res, 10001, 'system error', 500);
      case 'rateLimit':
        return error(res, 10027, 'app api calls too frequent', 200, retryAfterHeader(behavior));
      case 'payloadTooLarge':
        return error(res, 10018, 'request too long');
      case 'quota':
        return error(res, 22101, 'too many notifications');
      default:
        break;
    }
    const bad = regIds.filter((t) => fateOf(t, behavior) === 'invalid');
    const msgId = `scm${Date.now()}${randomBytes(4).readUInt32BE(0)}t`;
    const rec: XiaomiSendRecord = { msgId, regIds: regIds.filter((t) => !bad.includes(t)), fields: Object.fromEntries(f) };
    sends.push(rec);
    for (const t of rec.regIds) lastByToken.set(t, rec);
    return sendJson(res, 200, {
      result: 'ok',
      trace_id: traceId(),
      code: 0,
      description: '成功',
      info: `Received push messages for ${regIds.length} REGID`,
      data: { id: msgId, day_quota: '0', day_acked: String(sends.length), ...(bad.length ? { [badField]: bad.join(',') } : {}) },
    });
  };

  const started = await startRecordingServer(opts, requests, handler);
  return {
    revokes,
    port: started.port,
    url: started.url,
    appSecret,
    packageName,
    requests,
    sends,
    setDailyTotal: (total) => {
      dailyTotal = total;
    },
    setBehavior: (b) => {
      behavior = { ...behavior, ...b, tokens: { ...behavior.tokens, ...b.tokens } };
    },
    resetBehavior: () => {
      behavior = defaultBehavior();
    },
    receiptFor: (token, o = {}) => {
      const list = Array.isArray(token) ? token : [token];
      const byMsg = new Map<string, { rec?: XiaomiSendRecord; targets: string[] }>();
      for (const t of list) {
        const rec = lastByToken.get(t);
        const id = o.msgId ?? rec?.msgId ?? `scm${Date.now()}0t`;
        const entry = byMsg.get(id) ?? { ...(rec ? { rec } : {}), targets: [] };
        entry.targets.push(t);
        byMsg.set(id, entry);
      }
      const data: Record<string, unknown> = {};
      for (const [id, { rec, targets }] of byMsg) {
        data[id] = {
          barStatus: 'Enable',
          type: o.type ?? 1,
          targets: targets.join(','),
          timestamp: o.timestamp ?? Date.now(),
          param: o.param ?? rec?.fields['extra.callback.param'] ?? '',
          jobkey: rec?.fields['extra.jobkey'] ?? '',
        };
      }
      const rawBody = new URLSearchParams({ data: JSON.stringify(data) }).toString();
      const ct = 'application/x-www-form-urlencoded';
      return { headers: { 'content-type': ct }, contentType: ct, rawBody };
    },
    close: started.close,
  };
}

function traceId(): string {
  return `Xcm${randomBytes(8).toString('hex')}`;
}

/** Checks a `/v3/message/regid` form against the documented field rules (Xiaomi's API doc and MOD's field comments). */
export function validateXiaomiForm(
  f: URLSearchParams,
  o: { packageName: string; maxRegIds?: number; maxPayload?: number },
): { code: number; description: string } | undefined {
  const bad = (code: number, description: string) => ({ code, description });
  const reg = f.get('registration_id');
  if (!reg) return bad(10016, 'registration_id is required');
  const ids = reg.split(',');
  if (ids.some((t) => t.trim() === '')) return bad(10017, 'empty registration_id in list');
  if (ids.length > (o.maxRegIds ?? 100)) return bad(10017, `at most ${o.maxRegIds ?? 100} registration_id per request`);
  const pkgs = (f.get('restricted_package_name') ?? '').split(',');
  if (!pkgs.includes(o.packageName)) return bad(22022, 'illegal package name');
  const pt = f.get('pass_through') ?? '0';
  if (pt !== '0' && pt !== '1') return bad(10017, 'pass_through must be 0 or 1');
  const payload = f.get('payload');
  if (payload !== null && Buffer.byteLength(payload, 'utf8') > (o.maxPayload ?? 4096)) return bad(10018, 'request too long');
  if (pt === '0') {
    const title = f.get('title');
    const desc = f.get('description');
    if (!title || !title.trim() || !desc || !desc.trim()) return bad(10016, 'title and description are required');
    // ❓ "一个中英文字符均计算为1" (MOD) is silent on emoji; a Java server counts UTF-16 units, the
    // stricter reading, so the mock does too.
    if (title.length >= 50) return bad(10017, 'title must be shorter than 50 characters');
    if (desc.length >= 128) return bad(10017, 'description must be shorter than 128 characters');
  } else if (payload === null) {
    return bad(10016, 'payload is required for pass-through messages');
  }
  const notifyId = f.get('notify_id');
  if (notifyId !== null && (!/^\d+$/.test(notifyId) || Number(notifyId) > 2147483647)) return bad(22103, 'illegal notify id');
  const nt = f.get('notify_type');
  if (nt !== null && !/^-1$|^[0-7]$/.test(nt)) return bad(10017, 'illegal notify_type');
  const ttl = f.get('time_to_live');
  if (ttl !== null && (!/^\d+$/.test(ttl) || Number(ttl) > 14 * 86_400_000)) return bad(10017, 'illegal time_to_live');
  const jobkey = f.get('extra.jobkey');
  // one source: ≤ 20 chars; MOD (the vendor's field comment): ≤ 12 and not starting with `_`. The stricter.
  if (jobkey !== null && !/^[0-9a-zA-Z-][0-9a-zA-Z_-]{0,11}$/.test(jobkey)) return bad(10017, 'illegal jobkey');
  const param = f.get('extra.callback.param');
  if (param !== null && Buffer.byteLength(param, 'utf8') > 256) return bad(10017, 'callback.param too long');
  const effect = f.get('extra.notify_effect');
  if (effect !== null) {
    if (!['1', '2', '3'].includes(effect)) return bad(10017, 'illegal notify_effect');
    if (effect === '2' && !f.get('extra.intent_uri')) return bad(10016, 'notify_effect 2 needs extra.intent_uri');
    if (effect === '3' && !f.get('extra.web_uri')) return bad(10016, 'notify_effect 3 needs extra.web_uri');
  }
  const custom = [...f.keys()].filter((k) => k.startsWith('extra.') && !RESERVED_EXTRAS.has(k.slice(6)));
  if (custom.length > 10) return bad(10017, 'at most 10 custom extras');
  if (custom.some((k) => k.length > 1024 || (f.get(k) ?? '').length > 1024)) return bad(10017, 'custom extra longer than 1024 characters');
  return undefined;
}
