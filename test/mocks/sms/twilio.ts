import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { testPki } from '../tls.js';

/**
 * Twilio's Messages API (docs/sms.md), strict, over HTTPS with the test PKI:
 * `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` only.
 * - HTTP Basic auth: the Account SID and Auth Token, or the API key SID and secret → else 401 / 20003.
 * - The path's AccountSid must be the mock's account → else 404 / 20404.
 * - `Content-Type: application/x-www-form-urlencoded` → else 400 (the API takes form parameters).
 * - `To` required (21604) and E.164 (21211); exactly one of `From` (21603 when neither) and
 *   `MessagingServiceSid`; `Body` required (21602) and at most 1,600 characters (21617).
 * - Twilio's documented test numbers answer their documented errors: +15005550001 → 21211 (invalid),
 *   +15005550009 → 21614 (not a mobile number), +15005550004 → 21610 (unsubscribed); more via `fates`.
 * - `failFirst` answers the next N requests with an error (e.g. 429 / 20429 with Retry-After).
 * - 201 answers a Message resource: `sid` (SM + 32 hex), `status: "queued"`, `to`, `body`, ….
 * `statusCallback(sid, status)` builds the signed status callback Twilio would post.
 */

export interface TwilioError {
  status: number;
  code: number;
  message?: string;
  retryAfter?: string;
}
export interface TwilioMessageRecord {
  sid: string;
  to: string;
  from?: string;
  messagingServiceSid?: string;
  body: string;
  statusCallback?: string;
}
export interface TwilioRequestRecord {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  form: Record<string, string>;
  status: number;
  answer: unknown;
}
export interface TwilioMock {
  url: string;
  accountSid: string;
  authToken: string;
  apiKeySid: string;
  apiKeySecret: string;
  requests: TwilioRequestRecord[];
  /** Messages the mock accepted (201), in order. */
  messages: TwilioMessageRecord[];
  fates: Map<string, TwilioError>;
  failFirst(n: number, error: TwilioError): void;
  statusCallback(sid: string, status: 'delivered' | 'undelivered' | 'failed' | 'sent', errorCode?: string): { body: string; signature: string; url: string };
  close(): Promise<void>;
}

/** Twilio's documented scheme, written here on its own so the provider's verifier is checked against it. */
function sign(authToken: string, url: string, params: URLSearchParams): string {
  const pairs = [...params.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHmac('sha1', authToken).update(url + pairs.map(([k, v]) => k + v).join(''), 'utf8').digest('base64');
}

const hex = (n: number) => randomBytes(n).toString('hex');
const MESSAGES = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;
const DOCUMENTED: Record<string, TwilioError> = {
  '+15005550001': { status: 400, code: 21211, message: "The 'To' number +15005550001 is not a valid phone number." },
  '+15005550009': { status: 400, code: 21614, message: "'To' number is not a valid mobile number" },
  '+15005550004': { status: 400, code: 21610, message: 'Attempt to send to unsubscribed recipient' },
};

export async function startTwilioMock(): Promise<TwilioMock> {
  const pki = testPki();
  const accountSid = `AC${hex(16)}`;
  const authToken = hex(16);
  const apiKeySid = `SK${hex(16)}`;
  const apiKeySecret = hex(16);
  const requests: TwilioRequestRecord[] = [];
  const messages: TwilioMessageRecord[] = [];
  const fates = new Map<string, TwilioError>(Object.entries(DOCUMENTED));
  let forced: { n: number; error: TwilioError } | undefined;
  const byMessage = new Map<string, TwilioMessageRecord>();

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const path = (req.url ?? '').split('?')[0]!;
    const form = Object.fromEntries(new URLSearchParams(raw));
    const record: TwilioRequestRecord = { method: req.method ?? '', path, headers: req.headers, form, status: 0, answer: null };
    requests.push(record);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      record.answer = body;
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    };
    const error = (e: TwilioError) =>
      answer(e.status, { code: e.code, message: e.message ?? `error ${e.code}`, more_info: `https://www.twilio.com/docs/errors/${e.code}`, status: e.status }, e.retryAfter ? { 'retry-after': e.retryAfter } : {});

    const m = MESSAGES.exec(path);
    if (req.method !== 'POST' || !m) return error({ status: 404, code: 20404, message: 'The requested resource was not found' });
    const auth = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    const [user, pass] = auth ? Buffer.from(auth[1]!, 'base64').toString().split(':') : [];
    const authed = (user === accountSid && pass === authToken) || (user === apiKeySid && pass === apiKeySecret);
    if (!authed) return error({ status: 401, code: 20003, message: 'Authenticate' });
    if (m[1] !== accountSid) return error({ status: 404, code: 20404, message: 'The requested resource was not found' });
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return error({ status: 400, code: 20001, message: 'expected application/x-www-form-urlencoded parameters' });
    }
    if (forced && forced.n > 0) {
      forced.n--;
      return error(forced.error);
    }
    const to = form.To;
    if (!to) return error({ status: 400, code: 21604, message: "A 'To' phone number is required." });
    if (!/^\+[1-9]\d{6,14}$/.test(to)) return error({ status: 400, code: 21211, message: `The 'To' number ${to} is not a valid phone number.` });
    if (!form.From && !form.MessagingServiceSid) return error({ status: 400, code: 21603, message: "A 'From' phone number is required." });
    if (form.From && form.MessagingServiceSid) return error({ status: 400, code: 21603, message: 'give From or MessagingServiceSid (this mock refuses both)' });
    if (!form.Body) return error({ status: 400, code: 21602, message: 'Message body is required.' });
    if ([...form.Body].length > 1600) return error({ status: 400, code: 21617, message: 'The concatenated message body exceeds the 1600 character limit.' });
    const fate = fates.get(to);
    if (fate) return error(fate);
    const sid = `SM${hex(16)}`;
    const msg: TwilioMessageRecord = {
      sid,
      to,
      body: form.Body,
      ...(form.From ? { from: form.From } : {}),
      ...(form.MessagingServiceSid ? { messagingServiceSid: form.MessagingServiceSid } : {}),
      ...(form.StatusCallback ? { statusCallback: form.StatusCallback } : {}),
    };
    messages.push(msg);
    byMessage.set(sid, msg);
    answer(201, {
      sid,
      account_sid: accountSid,
      to,
      from: form.From ?? null,
      messaging_service_sid: form.MessagingServiceSid ?? null,
      body: form.Body,
      status: 'queued',
      num_segments: '1',
      direction: 'outbound-api',
      api_version: '2010-04-01',
      error_code: null,
      error_message: null,
      uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
    });
  };

  const server = createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `https://127.0.0.1:${port}`,
    accountSid,
    authToken,
    apiKeySid,
    apiKeySecret,
    requests,
    messages,
    fates,
    failFirst(n, error) {
      forced = { n, error };
    },
    statusCallback(sid, status, errorCode) {
      const msg = byMessage.get(sid);
      if (!msg?.statusCallback) throw new Error(`message ${sid} was sent without a StatusCallback`);
      const params = new URLSearchParams({ AccountSid: accountSid, ApiVersion: '2010-04-01', MessageSid: sid, SmsSid: sid, MessageStatus: status, SmsStatus: status, To: msg.to, From: msg.from ?? '+15005550006' });
      if (errorCode) params.set('ErrorCode', errorCode);
      return { url: msg.statusCallback, body: params.toString(), signature: sign(authToken, msg.statusCallback, params) };
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
