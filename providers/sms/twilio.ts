import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { safeEqual } from '../../src/core/secrets.js';
import { CredentialError, failed, invalid, retry, sent, httpStatusCode, type Outcome, type OutcomeReason, type ReceiptEvent, type ReceiptRequest } from '../types.js';
import { networkRetry, retryAfterMs, vendorFetchForm, type VendorFetchResult } from '../shared/http.js';
import { clip, isRecord } from '../shared/json.js';
import { header } from '../shared/receipts.js';

/**
 * Twilio Programmable Messaging, the Messages resource (docs/sms.md lists each fact with its
 * public source): `POST {endpoint}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth
 * (Account SID and Auth Token, or an API key SID and secret), a form-encoded body with `To`,
 * `From` or `MessagingServiceSid`, `Body` and optionally `StatusCallback`. A 201 answers the
 * Message resource (`sid`); an error answers `{code, message, more_info, status}`.
 */
export const TWILIO_DEFAULT_ENDPOINT = 'https://api.twilio.com';
export const twilioMessagesPath = (accountSid: string) => `/2010-04-01/Accounts/${accountSid}/Messages.json`;

export const twilioSmsCredentialSchema = z
  .object({
    driver: z.literal('twilio'),
    accountSid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'a Twilio Account SID: AC and 32 hex digits'),
    authToken: z.string().min(16).max(128).describe('The Auth Token: HTTP Basic password, and the key of status callback signatures'),
    apiKeySid: z.string().regex(/^SK[0-9a-fA-F]{32}$/, 'a Twilio API key SID: SK and 32 hex digits').optional().describe('Authenticate with an API key instead of the Auth Token'),
    apiKeySecret: z.string().min(1).max(128).optional(),
    from: z.string().min(1).max(64).optional().describe('The sender: an E.164 Twilio number or an alphanumeric sender id'),
    messagingServiceSid: z.string().regex(/^MG[0-9a-fA-F]{32}$/, 'a Messaging Service SID: MG and 32 hex digits').optional(),
    statusCallback: z.boolean().default(true).describe('Ask Twilio for delivery receipts at this app’s receipt URL (signed, verified)'),
    callbackUrl: z.string().url().optional(),
    qps: z.number().int().positive().optional(),
  })
  .strict();
export type TwilioSmsCredential = z.infer<typeof twilioSmsCredentialSchema>;

export function checkTwilioCredential(cred: TwilioSmsCredential): void {
  if (!cred.from === !cred.messagingServiceSid) throw new CredentialError('from', 'give exactly one of from and messagingServiceSid (Twilio needs one sender)');
  if (!cred.apiKeySid !== !cred.apiKeySecret) throw new CredentialError(cred.apiKeySid ? 'apiKeySecret' : 'apiKeySid', 'an API key needs both apiKeySid and apiKeySecret');
}

/**
 * Twilio error codes Relay acts on. A dead number is quarantined (`invalid`): it is not a phone
 * number (21211), cannot take SMS (21614), or its owner opted out with STOP (21610, sending again
 * is refused until they text START). 20429 / HTTP 429 is safe to retry. The rest fail the message.
 */
const INVALID_CODES = new Set([21211, 21610, 21614]);

export function classifyTwilioAnswer(res: VendorFetchResult): Outcome {
  if (!res.ok) return networkRetry(res);
  const body = isRecord(res.json) ? res.json : {};
  if (res.status === 201 || res.status === 200) {
    return typeof body.sid === 'string' ? sent(body.sid) : retry({ code: httpStatusCode(res.status), message: 'Twilio answered without a message sid', evidence: { status: res.status, body: clip(res.text, 300) } });
  }
  const code = typeof body.code === 'number' ? body.code : undefined;
  const reason: OutcomeReason = {
    code: code !== undefined ? String(code) : httpStatusCode(res.status),
    message: typeof body.message === 'string' ? clip(body.message, 300) as string : `Twilio answered HTTP ${res.status}`,
    evidence: { status: res.status, ...(code !== undefined ? { code } : {}), ...(typeof body.more_info === 'string' ? { moreInfo: body.more_info } : {}) },
  };
  if (code !== undefined && INVALID_CODES.has(code)) return invalid(reason);
  if (res.status === 429 || code === 20429 || res.status >= 500) return retry(reason, retryAfterMs(res.headers));
  return failed(reason);
}

export async function sendTwilioSms(cred: TwilioSmsCredential, endpoint: string, to: string, text: string): Promise<Outcome> {
  const fields: Record<string, string> = { To: to, Body: text };
  if (cred.messagingServiceSid) fields.MessagingServiceSid = cred.messagingServiceSid;
  else fields.From = cred.from!;
  if (cred.statusCallback && cred.callbackUrl) fields.StatusCallback = cred.callbackUrl;
  const user = cred.apiKeySid ?? cred.accountSid;
  const pass = cred.apiKeySid ? cred.apiKeySecret! : cred.authToken;
  const res = await vendorFetchForm(`${endpoint}${twilioMessagesPath(cred.accountSid)}`, fields, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`, accept: 'application/json' },
  });
  return classifyTwilioAnswer(res);
}

/**
 * X-Twilio-Signature: base64 HMAC-SHA1, keyed with the Auth Token, of the full URL Twilio called
 * followed by every POST parameter sorted by name, each as name then value with no separator.
 */
export function twilioSignature(authToken: string, url: string, params: URLSearchParams): string {
  const names = [...new Set(params.keys())].sort();
  let data = url;
  for (const name of names) for (const v of params.getAll(name)) data += name + v;
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

/** The URL Twilio signs is the StatusCallback Relay sent: the credential's `callbackUrl`. */
export function verifyTwilioReceipt(cred: TwilioSmsCredential, req: ReceiptRequest): boolean {
  const sig = header(req.headers, 'x-twilio-signature');
  if (!sig || !cred.callbackUrl || !req.contentType.includes('application/x-www-form-urlencoded')) return false;
  return safeEqual(sig, twilioSignature(cred.authToken, cred.callbackUrl, new URLSearchParams(req.rawBody)));
}

/**
 * A status callback: `MessageSid`, `MessageStatus` (queued, sent, delivered, undelivered, failed,
 * …), `To`, and `ErrorCode` when it failed. Only the end states are facts about delivery.
 */
export function parseTwilioReceipt(req: ReceiptRequest): ReceiptEvent[] {
  const form = new URLSearchParams(req.rawBody);
  const sid = form.get('MessageSid');
  const status = form.get('MessageStatus');
  if (!sid || !status) throw new Error('Twilio status callback: MessageSid and MessageStatus are required');
  const to = form.get('To') ?? undefined;
  const base = { providerId: sid, ...(to ? { token: to } : {}) };
  if (status === 'delivered' || status === 'read') return [{ event: 'delivered', ...base }];
  if (status === 'undelivered' || status === 'failed') {
    const code = form.get('ErrorCode') || status;
    return [{ event: 'failed', ...base, reason: { code, message: `Twilio reports the SMS ${status}${form.get('ErrorCode') ? ` (error ${code})` : ''}` } }];
  }
  return [];
}
