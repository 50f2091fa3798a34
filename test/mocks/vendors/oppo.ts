import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { ReceiptRequest } from '../../../providers/types.js';
import { sendAnswer, startRecordingServer, type RawAnswer, type RecordedRequest } from './scaffold.js';

/**
 * An OPPO push server (docs/providers/oppo-vivo-meizu.md) over HTTPS with the test PKI:
 * - `POST /server/v1/auth` (form `app_key`, `timestamp`, `sign`): checks the app key (14/15), the
 *   sign `hex(sha256(appKey + timestamp + masterSecret))` (16/17) and the timestamp (18, and 19
 *   when more than 10 min off); answers `{code:0, data:{auth_token, create_time}}`.
 * - `POST /server/v1/message/notification/unicast` (form `auth_token`, `message`) and
 *   `…/unicast_batch` (form `auth_token`, `messages`, ≤ 1000 → else 41): the token may come in the
 *   body (official) or an `auth_token` header (one SDK); missing → 29, unknown/expired → 11.
 *   Bodies are validated (target_type 2/5, target_value, notification title ≤ 50 / content ≤ 128,
 *   action_parameters ≤ 4000, off_line_ttl ≤ 10 days → 41 / 40; category and notify_level → 67,
 *   including a 私信 (通讯与服务) category without `channel_id`: "私信 needs the registered private
 *   channel", and 67 is the documented category / private-message code).
 * - Per-target fates: explicit map, then prefix rules, else success. Defaults: `invalid-` → 10000,
 *   `quota-` → 33 (per target), `busy-` → -2. Top-level answers can be forced for the first N
 *   sends (`failFirst`), and every issued auth token can be expired at once (`expireTokens()`).
 */

export type OppoTokenFate = 'ok' | { code: number; message?: string };
/** A top-level answer: an OPPO code in a 200 body, or an HTTP status (with Retry-After) and raw body. */
export interface OppoTopAnswer extends RawAnswer {
  code?: number;
  message?: string;
}

export interface OppoBehavior {
  tokens: Record<string, OppoTokenFate>;
  prefixes: Record<string, OppoTokenFate>;
  /** The next `n` send requests (unicast / unicast_batch) get `answer` instead of being processed. */
  failFirst?: { n: number; answer: OppoTopAnswer };
  /** The next `n` auth requests get `answer`. */
  authFailFirst?: { n: number; answer: OppoTopAnswer };
  /** Answer every send with code 11 (a token OPPO never accepts). */
  rejectAllTokens?: boolean;
}

export interface OppoRequestRecord {
  path: string;
  headers: IncomingHttpHeaders;
  form: Record<string, string>;
  /** Parsed `message` / `messages` JSON for send calls. */
  messages?: Record<string, unknown>[];
  answer?: unknown;
  status?: number;
}

export interface OppoReceiptInput {
  messageId: string;
  registrationIds: string[];
  eventType: 'push_arrive' | 'regid_invalid' | 'user_daily_limit' | string;
  param?: string;
  taskId?: string;
  eventTime?: number;
}

export interface OppoMock {
  port: number;
  url: string;
  appKey: string;
  masterSecret: string;
  requests: OppoRequestRecord[];
  /** Auth requests that issued a token. */
  readonly authCount: number;
  /** Send requests (unicast + unicast_batch) that reached validation. */
  readonly sendCount: number;
  setBehavior(b: Partial<OppoBehavior>): void;
  /** Every auth token issued so far is now expired (answers code 11). */
  expireTokens(): void;
  /** A receipt callback exactly as OPPO posts it. */
  receiptFor(events: OppoReceiptInput[]): ReceiptRequest;
  close(): Promise<void>;
}

const DEFAULT_PREFIXES: Record<string, OppoTokenFate> = {
  'invalid-': { code: 10000, message: 'registration_id格式不正确' },
  'quota-': { code: 33, message: '超过每日推送上限' },
  'busy-': { code: -2, message: 'flow control' },
};

export async function startOppoMock(opts: { appKey?: string; masterSecret?: string; port?: number } = {}): Promise<OppoMock> {
  const appKey = opts.appKey ?? 'oppo-app-key';
  const masterSecret = opts.masterSecret ?? 'oppo-master-secret';
  const requests: OppoRequestRecord[] = [];
  const live = new Set<string>();
  const expired = new Set<string>();
  let behavior: OppoBehavior = { tokens: {}, prefixes: { ...DEFAULT_PREFIXES } };
  let authCount = 0;
  let sendCount = 0;
  let seq = 0;

  const fateOf = (token: string): OppoTokenFate => {
    const explicit = behavior.tokens[token];
    if (explicit) return explicit;
    for (const [prefix, fate] of Object.entries(behavior.prefixes)) if (token.startsWith(prefix)) return fate;
    return 'ok';
  };

  function reply(res: ServerResponse, rec: OppoRequestRecord, answer: OppoTopAnswer | Record<string, unknown>, status = 200): void {
    Object.assign(rec, sendAnswer(res, answer, status));
  }
  const err = (code: number, message: string) => ({ code, message });

  function handle(req: RecordedRequest, res: ServerResponse): void {
    const { path, rawBody: raw } = req;
    const form = Object.fromEntries(new URLSearchParams(raw));
    const rec: OppoRequestRecord = { path, headers: req.headers, form };
    requests.push(rec);
    if (req.method !== 'POST') return reply(res, rec, err(12, 'HTTP method not allowed'));
    if (!String(req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) {
      return reply(res, rec, err(41, 'Content-Type must be application/x-www-form-urlencoded'));
    }
    if (path === '/server/v1/auth') return auth(res, rec);
    if (path === '/server/v1/message/notification/unicast' || path === '/server/v1/message/notification/unicast_batch') {
      return send(res, rec, path.endsWith('_batch'));
    }
    return reply(res, rec, err(20, 'invalid method'), 404);
  }

  function auth(res: ServerResponse, rec: OppoRequestRecord): void {
    if (behavior.authFailFirst && behavior.authFailFirst.n > 0) {
      behavior.authFailFirst.n--;
      const a = behavior.authFailFirst.answer;
      return reply(res, rec, a.code !== undefined && a.status === undefined ? err(a.code, a.message ?? '') : a);
    }
    const { app_key: key, timestamp, sign } = rec.form;
    if (!key) return reply(res, rec, err(15, 'missing AppKey'));
    if (key !== appKey) return reply(res, rec, err(14, 'invalid AppKey'));
    if (!timestamp) return reply(res, rec, err(18, 'missing timestamp'));
    if (!/^\d{13}$/.test(timestamp) || Math.abs(Date.now() - Number(timestamp)) > 10 * 60_000) return reply(res, rec, err(19, 'invalid timestamp'));
    if (!sign) return reply(res, rec, err(17, 'missing sign'));
    const expected = createHash('sha256').update(appKey + timestamp + masterSecret).digest('hex');
    if (sign.toLowerCase() !== expected) return reply(res, rec, err(16, 'invalid sign'));
    const token = randomBytes(12).toString('hex');
    live.add(token);
    authCount++;
    reply(res, rec, { code: 0, message: 'success', data: { auth_token: token, create_time: Date.now() } });
  }

  function send(res: ServerResponse, rec: OppoRequestRecord, batch: boolean): void {
    const headerToken = rec.headers['auth_token'];
    const token = rec.form.auth_token ?? (typeof headerToken === 'string' ? headerToken : undefined);
    if (!token) return reply(res, rec, err(29, 'missing auth_token'));
    if (behavior.rejectAllTokens || expired.has(token) || !live.has(token)) return reply(res, rec, err(11, 'invalid auth_token'));
    if (behavior.failFirst && behavior.failFirst.n > 0) {
      behavior.failFirst.n--;
      const a = behavior.failFirst.answer;
      return reply(res, rec, a.code !== undefined && a.status === undefined ? err(a.code, a.message ?? '') : a);
    }
    let messages: unknown;
    try {
      messages = JSON.parse(batch ? (rec.form.messages ?? '') : (rec.form.message ?? ''));
    } catch {
      return reply(res, rec, err(40, batch ? 'messages must be a JSON array' : 'message must be JSON'));
    }
    const list = batch ? messages : [messages];
    if (!Array.isArray(list) || list.length === 0) return reply(res, rec, err(40, 'missing args: messages'));
    if (list.length > 1000) return reply(res, rec, err(41, 'messages: at most 1000 per unicast_batch'));
    rec.messages = list as Record<string, unknown>[];
    for (const m of list) {
      const problem = validateMessage(m);
      if (problem) return reply(res, rec, err(problem.code, problem.message));
    }
    sendCount++;
    interface Row { messageId?: string; registrationId: string; errorCode?: number; errorMessage?: string }
    const rows: Row[] = (list as { target_value: string }[]).map((m) => {
      const fate = fateOf(m.target_value);
      return fate === 'ok'
        ? { messageId: `${appKey}-1-1-${++seq}`, registrationId: m.target_value }
        : { registrationId: m.target_value, errorCode: fate.code, errorMessage: fate.message ?? `error ${fate.code}` };
    });
    if (batch) return reply(res, rec, { code: 0, message: '', data: rows });
    const row = rows[0]!;
    if (row.errorCode !== undefined) return reply(res, rec, err(row.errorCode, row.errorMessage ?? ''));
    reply(res, rec, { code: 0, message: '', data: { messageId: row.messageId } });
  }

  const started = await startRecordingServer({ port: opts.port }, undefined, handle);
  const port = started.port;

  return {
    port,
    url: `https://127.0.0.1:${port}`,
    appKey,
    masterSecret,
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
      for (const t of live) expired.add(t);
    },
    receiptFor(events) {
      const body = events.map((e) => ({
        messageId: e.messageId,
        appId: appKey,
        taskId: e.taskId ?? e.messageId,
        registrationIds: e.registrationIds.join(','),
        eventTime: String(e.eventTime ?? Date.now()),
        param: e.param ?? '',
        eventType: e.eventType,
      }));
      return { headers: { 'content-type': 'application/json' }, rawBody: JSON.stringify(body), contentType: 'application/json' };
    },
    close: () => started.close(),
  };
}

/** Checks one message object as OPPO documents it; returns the error code to answer, if any. */
function validateMessage(m: unknown): { code: number; message: string } | undefined {
  if (typeof m !== 'object' || m === null) return { code: 40, message: 'message must be an object' };
  const msg = m as Record<string, unknown>;
  if (msg.target_type !== 2 && msg.target_type !== 5) return { code: 41, message: 'target_type must be 2 (registration_id) or 5 (alias)' };
  if (typeof msg.target_value !== 'string' || !msg.target_value) return { code: 40, message: 'missing target_value' };
  const n = msg.notification;
  if (typeof n !== 'object' || n === null) return { code: 40, message: 'missing notification' };
  const nn = n as Record<string, unknown>;
  // Field naming is ❓ in the notes (SDKs: snake_case, doc example: camelCase): accept both.
  const pick = (snake: string, camel: string) => nn[snake] ?? nn[camel];
  const title = nn.title;
  const content = nn.content;
  if (typeof title !== 'string' || !title) return { code: 40, message: 'missing title' };
  if (typeof content !== 'string' || !content) return { code: 40, message: 'missing content' };
  if (Array.from(title).length > 50) return { code: 41, message: 'title longer than 50' };
  const style = pick('style', 'style') ?? 1;
  if (Array.from(content).length > (style === 2 ? 128 : 50)) return { code: 41, message: 'content too long for style' };
  const ap = pick('action_parameters', 'actionParameters');
  if (ap !== undefined && (typeof ap !== 'string' || ap.length > 4000)) return { code: 41, message: 'action_parameters must be a JSON string ≤ 4000' };
  if (typeof ap === 'string') {
    try {
      JSON.parse(ap);
    } catch {
      return { code: 41, message: 'action_parameters is not JSON' };
    }
  }
  const ttl = pick('off_line_ttl', 'offLineTtl');
  if (ttl !== undefined && (typeof ttl !== 'number' || ttl < 0 || ttl > 864_000)) return { code: 41, message: 'off_line_ttl must be 0..864000' };
  const level = pick('notify_level', 'notifyLevel');
  if (level !== undefined && ![1, 2, 16].includes(level as number)) return { code: 67, message: 'bad notify_level' };
  if (level !== undefined && pick('category', 'category') === undefined) return { code: 67, message: 'notify_level needs category' };
  const cat = pick('category', 'category');
  const privateCats = ['IM', 'ACCOUNT', 'TODO', 'DEVICE_REMINDER', 'ORDER', 'SUBSCRIPTION'];
  const cats = [...privateCats, 'NEWS', 'CONTENT', 'MARKETING', 'SOCIAL'];
  if (cat !== undefined && !cats.includes(cat as string)) return { code: 67, message: 'bad category' };
  if (privateCats.includes(cat as string) && pick('channel_id', 'channelId') === undefined) {
    return { code: 67, message: '私信 category needs the registered private channel_id' };
  }
  const click = pick('click_action_type', 'clickActionType');
  if (click !== undefined && ![0, 1, 2, 4, 5].includes(click as number)) return { code: 41, message: 'bad click_action_type' };
  if ((click === 2 || click === 5) && typeof pick('click_action_url', 'clickActionUrl') !== 'string') return { code: 40, message: 'click_action_url required' };
  return undefined;
}
