import { z } from 'zod';
import { CredentialError, failed, invalid, retry, sent, httpStatusCode, RELAY_CODES, type Outcome, type OutcomeReason } from '../types.js';
import { networkRetry, redactUrl, retryAfterMs, type VendorFetchResult } from '../shared/http.js';
import { atPath } from './common.js';
import { guardedFetch } from './guarded-fetch.js';

/**
 * The generic HTTP driver: one request per SMS to any gateway, described by the credential. The
 * URL, header values and the body's string leaves are templates with three placeholders,
 * `{{to}}` (E.164 number), `{{text}}` and `{{messageId}}` (Relay's message id); nothing else is
 * expanded. In the URL they are percent-encoded; in a JSON body the value is a JSON string.
 */
export const PLACEHOLDERS = ['to', 'text', 'messageId'] as const;
type Vars = Record<(typeof PLACEHOLDERS)[number], string>;
const PLACEHOLDER = /\{\{\s*([A-Za-z]+)\s*\}\}/g;

const code = z.union([z.string().min(1).max(64), z.number()]);

export const httpSmsCredentialSchema = z
  .object({
    driver: z.literal('http'),
    url: z.string().url().max(2048).describe('The gateway URL; may contain {{to}}, {{text}}, {{messageId}} (percent-encoded)'),
    method: z.enum(['POST', 'PUT', 'GET']).default('POST'),
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, 'an HTTP header name'), z.string().max(4096))
      .default({})
      .describe('Sent with every request (e.g. Authorization); values may use the placeholders'),
    bodyType: z.enum(['json', 'form', 'none']).default('json').describe('json: the body template as JSON; form: as application/x-www-form-urlencoded'),
    body: z.record(z.string().min(1).max(128), z.unknown()).optional().describe('The body template: string leaves may use the placeholders'),
    successStatus: z.array(z.number().int().min(100).max(599)).min(1).max(20).default([200, 201, 202]).describe('HTTP statuses that mean "accepted"'),
    /** For gateways that answer 200 with an error code in the body. */
    success: z
      .object({ path: z.string().min(1).max(128), equals: z.union([z.string(), z.number(), z.boolean()]) })
      .strict()
      .optional()
      .describe('A JSON field the answer must hold to count as accepted'),
    idPath: z.string().min(1).max(128).optional().describe('Where the gateway’s message id is in a JSON answer (e.g. data.id)'),
    errorCodePath: z.string().min(1).max(128).optional().describe('Where the gateway’s error code is in a JSON answer'),
    invalidCodes: z.array(code).max(100).default([]).describe('Error codes (or HTTP statuses) meaning the number is dead: the token is quarantined'),
    retryCodes: z.array(code).max(100).default([]).describe('Error codes meaning "try again later" (429 and 5xx always are)'),
    qps: z.number().int().positive().optional(),
    callbackUrl: z.string().url().optional(),
  })
  .strict();
export type HttpSmsCredential = z.infer<typeof httpSmsCredentialSchema>;

/** Every placeholder in a template string is one of the three. */
function checkTemplate(s: string, path: string): void {
  for (const m of s.matchAll(PLACEHOLDER)) {
    if (!(PLACEHOLDERS as readonly string[]).includes(m[1]!)) {
      throw new CredentialError(path, `unknown placeholder {{${m[1]}}}: use {{to}}, {{text}} or {{messageId}}`);
    }
  }
}

function walk(value: unknown, path: string, fn: (s: string, path: string) => void): void {
  if (typeof value === 'string') fn(value, path);
  else if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${path}.${i}`, fn));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`, fn);
}

export function checkHttpCredential(cred: HttpSmsCredential): void {
  checkTemplate(cred.url, 'url');
  for (const [k, v] of Object.entries(cred.headers)) checkTemplate(v, `headers.${k}`);
  if (cred.body) walk(cred.body, 'body', checkTemplate);
  if (cred.method === 'GET' && cred.bodyType !== 'none') throw new CredentialError('bodyType', 'a GET request has no body: use bodyType "none" (the URL can carry the placeholders)');
  if (cred.bodyType !== 'none' && !cred.body) throw new CredentialError('body', `bodyType ${cred.bodyType} needs a body template`);
  if (cred.bodyType === 'form' && cred.body) {
    for (const [k, v] of Object.entries(cred.body)) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new CredentialError(`body.${k}`, 'a form field is a string, number or boolean');
    }
  }
  const all = JSON.stringify([cred.url, cred.body ?? null, cred.headers]);
  if (!/\{\{\s*to\s*\}\}/.test(all)) throw new CredentialError('body', 'the request must carry the number: put {{to}} in the URL, a header or the body');
  if (!/\{\{\s*text\s*\}\}/.test(all)) throw new CredentialError('body', 'the request must carry the text: put {{text}} in the URL, a header or the body');
}

const fillString = (s: string, vars: Vars, encode: (v: string) => string = (v) => v) =>
  s.replace(PLACEHOLDER, (_m, name: string) => encode(vars[name as keyof Vars] ?? ''));

function fillValue(value: unknown, vars: Vars): unknown {
  if (typeof value === 'string') return fillString(value, vars);
  if (Array.isArray(value)) return value.map((v) => fillValue(v, vars));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillValue(v, vars)]));
  return value;
}

/** The request one SMS makes (exported for tests of the template). */
export function renderHttpRequest(cred: HttpSmsCredential, vars: Vars): { url: string; method: string; headers: Record<string, string>; body?: string } {
  const url = fillString(cred.url, vars, encodeURIComponent);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(cred.headers)) headers[k] = fillString(v, vars, (x) => x.replace(/[\r\n]/g, ' '));
  const has = (name: string) => Object.keys(headers).some((h) => h.toLowerCase() === name);
  if (cred.bodyType === 'none' || !cred.body) return { url, method: cred.method, headers };
  const filled = fillValue(cred.body, vars) as Record<string, unknown>;
  if (cred.bodyType === 'form') {
    if (!has('content-type')) headers['content-type'] = 'application/x-www-form-urlencoded;charset=UTF-8';
    return { url, method: cred.method, headers, body: new URLSearchParams(Object.entries(filled).map(([k, v]) => [k, String(v)])).toString() };
  }
  if (!has('content-type')) headers['content-type'] = 'application/json; charset=utf-8';
  return { url, method: cred.method, headers, body: JSON.stringify(filled) };
}

/** Classifies a gateway's answer by the credential's rules. */
export function classifyHttpAnswer(cred: HttpSmsCredential, res: VendorFetchResult): Outcome {
  if (!res.ok) return networkRetry(res);
  // The status only, never the answer's body: the gateway is whatever an app's admin named.
  const evidence = { status: res.status };
  const vendorCode = cred.errorCodePath ? atPath(res.json, cred.errorCodePath) : undefined;
  const hasCode = vendorCode !== undefined && vendorCode !== null && vendorCode !== '';
  const matches = (list: readonly (string | number)[], v: unknown) => list.some((c) => String(c) === String(v));
  const accepted = cred.successStatus.includes(res.status) && (!cred.success || atPath(res.json, cred.success.path) === cred.success.equals);
  if (accepted) {
    const id = cred.idPath ? atPath(res.json, cred.idPath) : undefined;
    return sent(typeof id === 'string' || typeof id === 'number' ? String(id) : undefined);
  }
  const reason: OutcomeReason = {
    code: hasCode ? String(vendorCode) : httpStatusCode(res.status),
    message: `the SMS gateway refused the message (HTTP ${res.status}${hasCode ? `, code ${String(vendorCode)}` : ''})`,
    evidence,
  };
  if ((hasCode && matches(cred.invalidCodes, vendorCode)) || matches(cred.invalidCodes, res.status)) return invalid(reason);
  if (res.status === 429 || res.status >= 500 || res.status === 408 || (hasCode && matches(cred.retryCodes, vendorCode))) return retry(reason, retryAfterMs(res.headers));
  return failed(reason);
}

/** `trusted`: SMS_HTTP_TRUSTED_URL, the one host that may be plain http or private (guarded-fetch.ts). */
export async function sendHttpSms(cred: HttpSmsCredential, vars: Vars, trusted?: string): Promise<Outcome> {
  const req = renderHttpRequest(cred, vars);
  const res = await guardedFetch(req.url, { method: req.method, headers: req.headers, ...(req.body !== undefined ? { body: req.body } : {}), ...(trusted ? { trusted } : {}) });
  if (!res.ok && res.reason.code === 'url_refused') return failed({ ...res.reason, code: RELAY_CODES.smsUrlRefused });
  if (!res.ok) return networkRetry({ ...res, reason: { ...res.reason, evidence: { url: redactUrl(req.url) } } });
  return classifyHttpAnswer(cred, res);
}
