import { z } from 'zod';
import { channelOverrides, type PushContent, type TokenIssue } from '../types.js';

/**
 * A phone number in E.164 form: `+`, a country code that does not start with 0, at most 15
 * digits in all (ITU-T E.164; Twilio asks for this form in `To`, see docs/sms.md).
 */
export const E164 = /^\+[1-9]\d{6,14}$/;
const E164_HINT = 'an E.164 phone number: + and 7 to 15 digits, such as +14155550100';

/** `tokens.sms` of `PUT /v1/devices/:id`. */
export const smsTokenSchema = z.string().regex(E164, E164_HINT);

export function normaliseSmsToken(raw: string): string | TokenIssue {
  return E164.test(raw) ? raw : { path: [], message: E164_HINT };
}

/** Twilio's `Body` holds at most 1,600 characters (docs/sms.md); generic gateways get the same cap. */
export const SMS_MAX_CHARS = 1600;

/** `overrides.sms` of `POST /v1/push`: the SMS text, instead of the notification's title and body. */
export const smsOverridesSchema = z
  .object({
    text: z.string().min(1).max(SMS_MAX_CHARS).optional().describe('The SMS text (default: "title: body" of the notification)'),
  })
  .strict();
export type SmsOverrides = z.infer<typeof smsOverridesSchema>;

/** The text one message sends by SMS: `overrides.sms.text`, else the notification's title and body. */
export function smsText(content: Pick<PushContent, 'overrides' | 'notification'>): string | undefined {
  const text = channelOverrides<SmsOverrides>(content, 'sms').text;
  if (text) return text.slice(0, SMS_MAX_CHARS);
  const n = content.notification;
  const parts = [n?.title, n?.body].filter((s): s is string => typeof s === 'string' && s.trim().length > 0);
  return parts.length > 0 ? parts.join(': ').slice(0, SMS_MAX_CHARS) : undefined;
}

/** The value at a dotted path (`data.id`, `messages.0.status`) of a parsed JSON answer. */
export function atPath(value: unknown, path: string): unknown {
  let cur = value;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}
