import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { ReceiptRequest } from '../../../providers/types.js';
import { sendAnswer, startRecordingServer, type RawAnswer, type RecordedRequest } from './scaffold.js';

/**
 * A vivo push server (docs/providers/oppo-vivo-meizu.md) over HTTPS with the test PKI, JSON in and out:
 * - `POST /message/auth {appId, appKey, timestamp, sign}`: appId (10200) / appKey (10201) checked,
 *   `sign = md5(appId + appKey + timestamp + appSecret)` (10206), timestamp within ±10 min (10207)
 *   → `{result:0, authToken}`.
 * - `POST /message/send`, `/message/saveListPayload`, `/message/pushToList`: the `authToken`
 *   header must hold a live token, else `result:10000` (the notes have no code for an expired
 *   token; 10000 is what one SDK refreshes on). Bodies are validated: appId equals the token's
 *   (10094), regId/alias (10050), notifyType (10054), title (10055 / 10056 > 40), category (10096),
 *   category vs classification (10097), pushToList regIds 2..1000, known taskId. Title and content
 *   lengths are weighted as VVDOC counts them ("一个汉字等于两个英文字符": non-ASCII counts 2), so
 *   title ≤ 40 = 20 Chinese characters, content ≤ 100 = 50. Checks without a documented code
 *   (content length included) answer 10099 (a mock choice).
 * - `listPayloadsPerDay` caps saveListPayload calls: past it, 10252 (批量发送消息体超出限制; VVDOC:
 *   no more saveListPayload that day).
 * - Per-token fates: explicit map, then prefixes, else success. A dead token is `{invalidStatus}`
 *   (`invalidUser` on /send with result 10302, `invalidUsers` entries on pushToList). Defaults:
 *   `invalid-` → status 2, `gone-` → status 1, `notest-` → status 4.
 *   `failFirst` forces top-level answers for the next N send-side calls; `expireTokens()` expires
 *   every issued authToken.
 */

export type VivoTokenFate = 'ok' | { invalidStatus: number };
export interface VivoTopAnswer extends RawAnswer {
  result?: number;
  desc?: string;
}
export interface VivoBehavior {
  tokens: Record<string, VivoTokenFate>;
  prefixes: Record<string, VivoTokenFate>;
  /** The next `n` calls to send / saveListPayload / pushToList get `answer`. */
  failFirst?: { n: number; answer: VivoTopAnswer };
  /** The next `n` auth calls get `answer`. */
  authFailFirst?: { n: number; answer: VivoTopAnswer };
  /** Every send-side call answers 10000, even with a fresh token. */
  rejectAllTokens?: boolean;
  /** saveListPayload calls accepted "today"; later ones answer 10252. Unset: no cap. */
  listPayloadsPerDay?: number;
}

export interface VivoRequestRecord {
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  answer?: unknown;
  status?: number;
}

export interface VivoReceiptInput {
  taskId: string;
  targets: string[];
  param?: string | null;
  ackType?: string;
  ackTime?: number;
}

export interface VivoMock {
  port: number;
  url: string;
  appId: string;
  appKey: string;
  appSecret: string;
  requests: VivoRequestRecord[];
  readonly authCount: number;
  readonly sendCount: number;
  setBehavior(b: Partial<VivoBehavior>): void;
  expireTokens(): void;
  receiptFor(entries: VivoReceiptInput[]): ReceiptRequest;
  close(): Promise<void>;
}

const SYSTEM_CATEGORIES = ['IM', 'ACCOUNT', 'TODO', 'DEVICE_REMINDER', 'ORDER', 'SUBSCRIPTION'];
const OPERATION_CATEGORIES = ['NEWS', 'CONTENT', 'MARKETING', 'SOCIAL'];
const DEFAULT_PREFIXES: Record<string, VivoTokenFate> = {
  'invalid-': { invalidStatus: 2 },
  'gone-': { invalidStatus: 1 },
  'notest-': { invalidStatus: 4 },
};

export async function startVivoMock(opts: { appId?: string; appKey?: string; appSecret?: string; port?: number } = {}): Promise<VivoMock> {
  const appId = opts.appId ?? '10004';
  const appKey = opts.appKey ?? 'vivo-app-key';
  const appSecret = opts.appSecret ?? 'vivo-app-secret';
  const requests: VivoRequestRecord[] = [];
  const live = new Set<string>();
  const tasks = new Map<string, Record<string, unknown>>();
  let behavior: VivoBehavior = { tokens: {}, prefixes: { ...DEFAULT_PREFIXES } };
  let authCount = 0;
  let sendCount = 0;
  let listPayloads = 0;
  let seq = 100_000;

  const fateOf = (token: string): VivoTokenFate => {
    const explicit = behavior.tokens[token];
    if (explicit) return explicit;
    for (const [prefix, fate] of Object.entries(behavior.prefixes)) if (token.startsWith(prefix)) return fate;
    return 'ok';
  };

  function reply(res: ServerResponse, rec: VivoRequestRecord, answer: VivoTopAnswer | Record<string, unknown>): void {
    Object.assign(rec, sendAnswer(res, answer));
  }
  const err = (result: number, desc: string) => ({ result, desc });
  const scripted = (a: VivoTopAnswer) => (a.result !== undefined && a.status === undefined ? err(a.result, a.desc ?? '') : a);

  function handle(req: RecordedRequest, res: ServerResponse): void {
    const { path, rawBody: raw } = req;
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const rec: VivoRequestRecord = { path, headers: req.headers, body: typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {} };
    requests.push(rec);
    if (req.method !== 'POST') return reply(res, rec, { status: 405, rawBody: 'method not allowed' });
    if (!String(req.headers['content-type'] ?? '').includes('application/json') || typeof body !== 'object' || body === null) {
      return reply(res, rec, err(10099, 'body must be JSON (mock)'));
    }
    if (path === '/message/auth') return auth(res, rec);
    if (!['/message/send', '/message/saveListPayload', '/message/pushToList'].includes(path)) return reply(res, rec, { status: 404, rawBody: 'not found' });
    const token = req.headers.authtoken;
    if (behavior.rejectAllTokens || typeof token !== 'string' || !live.has(token.trim())) return reply(res, rec, err(10000, '权限认证失败'));
    if (behavior.failFirst && behavior.failFirst.n > 0) {
      behavior.failFirst.n--;
      return reply(res, rec, scripted(behavior.failFirst.answer));
    }
    if (String(rec.body.appId) !== appId) return reply(res, rec, err(10094, 'appId与authToken不匹配'));
    if (path === '/message/pushToList') return pushToList(res, rec);
    if (path === '/message/saveListPayload' && behavior.listPayloadsPerDay !== undefined && listPayloads >= behavior.listPayloadsPerDay) {
      return reply(res, rec, err(10252, '批量发送消息体超出限制'));
    }
    const problem = validateMessage(rec.body, path === '/message/send');
    if (problem) return reply(res, rec, err(problem.result, problem.desc));
    sendCount++;
    const taskId = String(++seq);
    if (path === '/message/saveListPayload') {
      listPayloads++;
      tasks.set(taskId, rec.body);
      return reply(res, rec, { result: 0, desc: '请求成功', taskId });
    }
    const regId = rec.body.regId;
    const fate = typeof regId === 'string' ? fateOf(regId) : 'ok';
    if (fate !== 'ok') return reply(res, rec, { result: 10302, desc: 'regId不合法', invalidUser: { status: fate.invalidStatus, userid: regId } });
    reply(res, rec, { result: 0, desc: '请求成功', taskId });
  }

  function auth(res: ServerResponse, rec: VivoRequestRecord): void {
    if (behavior.authFailFirst && behavior.authFailFirst.n > 0) {
      behavior.authFailFirst.n--;
      return reply(res, rec, scripted(behavior.authFailFirst.answer));
    }
    const b = rec.body;
    if (b.appId === undefined || String(b.appId) !== appId) return reply(res, rec, err(10200, 'appId不合法'));
    if (b.appKey !== appKey) return reply(res, rec, err(10201, 'appKey不合法'));
    const ts = Number(b.timestamp);
    if (!Number.isFinite(ts) || Math.abs(Date.now() - ts) > 10 * 60_000) return reply(res, rec, err(10207, 'timestamp不合法'));
    const expected = createHash('md5').update(`${appId}${appKey}${String(b.timestamp)}${appSecret}`.trim()).digest('hex');
    if (typeof b.sign !== 'string' || b.sign.toLowerCase() !== expected) return reply(res, rec, err(10206, 'sign不合法'));
    const token = randomBytes(16).toString('hex');
    live.add(token);
    authCount++;
    reply(res, rec, { result: 0, desc: '请求成功', authToken: token });
  }

  function pushToList(res: ServerResponse, rec: VivoRequestRecord): void {
    const { regIds, taskId, requestId } = rec.body;
    if (typeof requestId !== 'string' || !requestId || requestId.length > 64) return reply(res, rec, err(10099, 'requestId required, ≤ 64 (mock)'));
    // 10252 is the daily saveListPayload count (VVDOC), not this: no documented code.
    if (!Array.isArray(regIds) || regIds.length < 2 || regIds.length > 1000) return reply(res, rec, err(10099, 'regIds must hold 2..1000 entries (mock)'));
    if (typeof taskId !== 'string' || !tasks.has(taskId)) return reply(res, rec, err(10099, 'unknown taskId (mock)'));
    sendCount++;
    const invalidUsers = (regIds as unknown[]).flatMap((r) => {
      const fate = fateOf(String(r));
      return fate === 'ok' ? [] : [{ status: fate.invalidStatus, userid: String(r) }];
    });
    reply(res, rec, { result: 0, desc: '请求成功', taskId, ...(invalidUsers.length ? { invalidUsers } : {}) });
  }

  const started = await startRecordingServer({ port: opts.port }, undefined, handle);
  const port = started.port;

  return {
    port,
    url: `https://127.0.0.1:${port}`,
    appId,
    appKey,
    appSecret,
    requests,
    get authCount() {
      return authCount;
    },
    get sendCount() {
      return sendCount;
    },
    setBehavior(b) {
      behavior = { ...behavior, ...b, tokens: { ...behavior.tokens, ...b.tokens }, prefixes: { ...behavior.prefixes, ...b.prefixes } };
    },
    expireTokens() {
      live.clear();
    },
    receiptFor(entries) {
      const body: Record<string, unknown> = {};
      for (const e of entries) {
        body[e.taskId] = {
          param: e.param ?? null,
          targets: e.targets.join(','),
          ...(e.ackType !== undefined ? { ackType: e.ackType } : {}),
          ...(e.ackTime !== undefined ? { ackTime: e.ackTime } : {}),
        };
      }
      return { headers: { 'content-type': 'application/json' }, rawBody: JSON.stringify(body), contentType: 'application/json' };
    },
    close: () => started.close(),
  };
}

/** Length as VVDOC counts it: "一个汉字等于两个英文字符"; ASCII counts 1, any other code point 2. */
function weightedLength(s: string): number {
  let n = 0;
  for (const ch of s) n += ch.codePointAt(0)! < 0x80 ? 1 : 2;
  return n;
}

/** Checks a /send (`single`) or /saveListPayload body; returns the error to answer, if any. */
function validateMessage(b: Record<string, unknown>, single: boolean): { result: number; desc: string } | undefined {
  if (single && typeof b.regId !== 'string' && typeof b.alias !== 'string') return { result: 10050, desc: 'alias和regId不能都为空' };
  if (![1, 2, 3, 4].includes(b.notifyType as number)) return { result: 10054, desc: 'notifyType不合法' };
  if (typeof b.title !== 'string' || !b.title.trim()) return { result: 10055, desc: 'title不能为空' };
  if (weightedLength(b.title) > 40) return { result: 10056, desc: 'title长度不能超过40' };
  if (typeof b.content !== 'string' || !b.content.trim() || weightedLength(b.content) > 100) return { result: 10099, desc: 'content empty or > 100 (mock)' };
  const ttl = b.timeToLive;
  if (ttl !== undefined && (typeof ttl !== 'number' || ttl < 60 || ttl > 86_400)) return { result: 10099, desc: 'timeToLive must be 60..86400 (mock)' };
  if (![1, 2, 3, 4].includes(b.skipType as number)) return { result: 10099, desc: 'skipType must be 1..4 (mock)' };
  if (b.skipType !== 1 && (typeof b.skipContent !== 'string' || b.skipContent.length > 1024)) return { result: 10099, desc: 'skipContent required, ≤ 1024 (mock)' };
  if (typeof b.requestId !== 'string' || !b.requestId || b.requestId.length > 64) return { result: 10099, desc: 'requestId required, ≤ 64 (mock)' };
  const ccm = b.clientCustomMap;
  if (ccm !== undefined) {
    if (typeof ccm !== 'object' || ccm === null || Array.isArray(ccm)) return { result: 10099, desc: 'clientCustomMap must be an object (mock)' };
    const entries = Object.entries(ccm);
    if (entries.length > 10 || JSON.stringify(ccm).length > 1024 || entries.some(([, v]) => typeof v !== 'string')) {
      return { result: 10099, desc: 'clientCustomMap: ≤ 10 string pairs, ≤ 1024 chars (mock)' };
    }
  }
  const cls = b.classification;
  if (cls !== undefined && cls !== 0 && cls !== 1) return { result: 10099, desc: 'classification must be 0 or 1 (mock)' };
  const cat = b.category;
  if (cat !== undefined) {
    if (typeof cat !== 'string' || ![...SYSTEM_CATEGORIES, ...OPERATION_CATEGORIES].includes(cat)) return { result: 10096, desc: 'category不合法' };
    if (cls === 1 && !SYSTEM_CATEGORIES.includes(cat)) return { result: 10097, desc: 'category与classification不匹配' };
    if (cls === 0 && !OPERATION_CATEGORIES.includes(cat)) return { result: 10097, desc: 'category与classification不匹配' };
  }
  const nid = b.notifyId;
  if (nid !== undefined && (!Number.isInteger(nid) || (nid as number) < 1 || (nid as number) > 2147483647)) return { result: 10099, desc: 'notifyId 1..2147483647 (mock)' };
  const extra = b.extra as Record<string, unknown> | undefined;
  if (extra?.callback !== undefined && String(extra.callback).length > 128) return { result: 10099, desc: 'extra.callback ≤ 128 (mock)' };
  if (extra?.['callback.param'] !== undefined && String(extra['callback.param']).length > 64) return { result: 10099, desc: 'extra.callback.param ≤ 64 (mock)' };
  return undefined;
}
