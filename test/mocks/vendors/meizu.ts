import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { ReceiptRequest } from '../../../providers/types.js';
import { sendAnswer, startRecordingServer, type RawAnswer, type RecordedRequest } from './scaffold.js';

/**
 * A Meizu (Flyme) push server (Meizu's API doc; docs/providers/oppo-vivo-meizu.md) over HTTPS with the test PKI:
 * `POST /garcia/api/server/push/varnished/pushByPushId`, form `appId, pushIds, messageJson, sign`.
 * - `sign` must be md5 of the other params sorted by name as `k=v` (raw values) + appSecret → else 1006.
 * - appId (110000), missing params (110004), pushIds ≤ 100 and messageJson checks
 *   (noticeBarInfo.title 1..32, content 1..100 UTF-16 units, noticeMsgType 0/1, clickType, validTime 1..72 h,
 *   notifyKey ≤ 8, extra.callback ≤ 128 B, callback.param ≤ 64 B) → 1005 (parameter error).
 * - Answer `{"code":"200","message":"","value":{"<per-id code>":[pushIds…]},"redirect":"","msgId":"…"}`;
 *   `value` lists only failed ids. Per-id fates: explicit map, then prefixes, else success.
 *   Defaults: `invalid-` → 110002, `illegal-` → 110003, `quota-` → 110011, `busy-` → 519.
 * - `failFirst` forces top-level answers (e.g. `{code: 110010}` rate limit) for the next N requests.
 */

export type MeizuTokenFate = 'ok' | { code: number };
export interface MeizuTopAnswer extends RawAnswer {
  code?: number;
  message?: string;
}
export interface MeizuBehavior {
  tokens: Record<string, MeizuTokenFate>;
  prefixes: Record<string, MeizuTokenFate>;
  failFirst?: { n: number; answer: MeizuTopAnswer };
}
export interface MeizuRequestRecord {
  path: string;
  headers: IncomingHttpHeaders;
  form: Record<string, string>;
  messageJson?: Record<string, unknown>;
  answer?: unknown;
  status?: number;
}
export interface MeizuReceiptInput {
  msgId: string;
  /** 1 delivered, 2 clicked. */
  type: 1 | 2;
  targets: string[];
  param?: string;
}
export interface MeizuMock {
  port: number;
  url: string;
  appId: string;
  appSecret: string;
  requests: MeizuRequestRecord[];
  readonly sendCount: number;
  setBehavior(b: Partial<MeizuBehavior>): void;
  receiptFor(entries: MeizuReceiptInput[]): ReceiptRequest;
  close(): Promise<void>;
}

const PUSH_PATH = '/garcia/api/server/push/varnished/pushByPushId';
const DEFAULT_PREFIXES: Record<string, MeizuTokenFate> = {
  'invalid-': { code: 110002 },
  'illegal-': { code: 110003 },
  'quota-': { code: 110011 },
  'busy-': { code: 519 },
};

export async function startMeizuMock(opts: { appId?: string; appSecret?: string; port?: number } = {}): Promise<MeizuMock> {
  const appId = opts.appId ?? '3315055';
  const appSecret = opts.appSecret ?? 'meizu-app-secret';
  const requests: MeizuRequestRecord[] = [];
  let behavior: MeizuBehavior = { tokens: {}, prefixes: { ...DEFAULT_PREFIXES } };
  let sendCount = 0;
  let seq = 0;

  const fateOf = (token: string): MeizuTokenFate => {
    const explicit = behavior.tokens[token];
    if (explicit) return explicit;
    for (const [prefix, fate] of Object.entries(behavior.prefixes)) if (token.startsWith(prefix)) return fate;
    return 'ok';
  };

  function reply(res: ServerResponse, rec: MeizuRequestRecord, a: MeizuTopAnswer | Record<string, unknown>): void {
    Object.assign(rec, sendAnswer(res, a));
  }
  // Meizu's code is a string ("200"); value is "" when nothing is listed.
  const err = (code: number, message: string) => ({ code: String(code), message, value: '', redirect: '' });

  function handle(req: RecordedRequest, res: ServerResponse): void {
    const { path, rawBody: raw } = req;
    const form = Object.fromEntries(new URLSearchParams(raw));
    const rec: MeizuRequestRecord = { path, headers: req.headers, form };
    requests.push(rec);
    if (req.method !== 'POST' || path !== PUSH_PATH) return reply(res, rec, { status: 404, rawBody: 'not found' });
    if (!String(req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) return reply(res, rec, err(1005, 'form body expected'));
    const { appId: id, pushIds, messageJson, sign } = form;
    if (!id || !pushIds || !messageJson || !sign) return reply(res, rec, err(110004, '参数不能为空'));
    if (id !== appId) return reply(res, rec, err(110000, 'appId不合法'));
    const text = Object.keys(form).filter((k) => k !== 'sign').sort().map((k) => `${k}=${form[k]}`).join('');
    if (createHash('md5').update(text + appSecret).digest('hex') !== sign.toLowerCase()) return reply(res, rec, err(1006, '签名验证失败'));
    if (behavior.failFirst && behavior.failFirst.n > 0) {
      behavior.failFirst.n--;
      const a = behavior.failFirst.answer;
      return reply(res, rec, a.code !== undefined && a.status === undefined ? err(a.code, a.message ?? '') : a);
    }
    const ids = pushIds.split(',').filter(Boolean);
    if (ids.length === 0 || ids.length > 100) return reply(res, rec, err(1005, 'pushIds: 1..100'));
    let msg: unknown;
    try {
      msg = JSON.parse(messageJson);
    } catch {
      return reply(res, rec, err(1005, 'messageJson is not JSON'));
    }
    if (typeof msg !== 'object' || msg === null) return reply(res, rec, err(1005, 'messageJson must be an object'));
    rec.messageJson = msg as Record<string, unknown>;
    const problem = validateMeizuMessage(rec.messageJson);
    if (problem) return reply(res, rec, err(1005, problem));
    sendCount++;
    const value: Record<string, string[]> = {};
    for (const pid of ids) {
      const fate = fateOf(pid);
      if (fate !== 'ok') (value[String(fate.code)] ??= []).push(pid);
    }
    reply(res, rec, { code: '200', message: '', value, redirect: '', msgId: `NS${Date.now()}_${++seq}_3` });
  }

  const started = await startRecordingServer({ port: opts.port }, undefined, handle);
  const port = started.port;

  return {
    port,
    url: `https://127.0.0.1:${port}`,
    appId,
    appSecret,
    requests,
    get sendCount() {
      return sendCount;
    },
    setBehavior(b) {
      behavior = { ...behavior, ...b, tokens: { ...behavior.tokens, ...b.tokens }, prefixes: { ...behavior.prefixes, ...b.prefixes } };
    },
    receiptFor(entries) {
      const cb: Record<string, unknown> = {};
      for (const e of entries) cb[`${e.msgId}-${e.type}`] = { param: e.param ?? '', type: e.type, targets: e.targets };
      const rawBody = new URLSearchParams({ cb: JSON.stringify(cb), access_token: 'c68b0c7e' }).toString();
      const contentType = 'application/x-www-form-urlencoded';
      return { headers: { 'content-type': contentType }, rawBody, contentType };
    },
    close: () => started.close(),
  };
}

/** Checks a `messageJson` against MZDOC's field rules; the problem, or undefined when it passes. */
export function validateMeizuMessage(m: Record<string, unknown>): string | undefined {
  const bar = m.noticeBarInfo as Record<string, unknown> | undefined;
  if (typeof bar !== 'object' || bar === null) return 'noticeBarInfo required';
  // ❓ MZDOC does not say how it counts characters; a Java server counts UTF-16 units (an emoji
  // is 2), the stricter reading, so the mock counts that way too.
  const len = (v: unknown) => (typeof v === 'string' ? v.length : 0);
  if (len(bar.title) < 1 || len(bar.title) > 32) return 'noticeBarInfo.title: 1..32 chars';
  if (len(bar.content) < 1 || len(bar.content) > 100) return 'noticeBarInfo.content: 1..100 chars';
  if (bar.noticeMsgType !== undefined && bar.noticeMsgType !== 0 && bar.noticeMsgType !== 1) return 'noticeMsgType: 0 or 1';
  const click = m.clickTypeInfo as Record<string, unknown> | undefined;
  if (click) {
    if (![0, 1, 2, 3].includes(click.clickType as number)) return 'clickType: 0..3';
    if (click.clickType === 2 && typeof click.url !== 'string') return 'clickType 2 needs url';
    if (click.parameters !== undefined && (typeof click.parameters !== 'object' || click.parameters === null)) return 'parameters must be a JSON object';
  }
  const time = m.pushTimeInfo as Record<string, unknown> | undefined;
  if (time?.validTime !== undefined && (!Number.isInteger(time.validTime) || (time.validTime as number) < 1 || (time.validTime as number) > 72)) return 'validTime: 1..72 hours';
  const adv = m.advanceInfo as Record<string, unknown> | undefined;
  if (adv?.notifyKey !== undefined && len(adv.notifyKey) > 8) return 'notifyKey: ≤ 8 chars';
  const extra = m.extra as Record<string, unknown> | undefined;
  if (extra?.callback !== undefined && Buffer.byteLength(String(extra.callback)) > 128) return 'extra.callback ≤ 128 bytes';
  if (extra?.['callback.param'] !== undefined && Buffer.byteLength(String(extra['callback.param'])) > 64) return 'extra.callback.param ≤ 64 bytes';
  if (extra?.['callback.type'] !== undefined && ![1, 2, 3].includes(Number(extra['callback.type']))) return 'callback.type: 1, 2 or 3';
  return undefined;
}
