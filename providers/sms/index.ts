import { z } from 'zod';
import {
  endpointOf,
  failed,
  retry,
  RELAY_CODES,
  type EndpointSetting,
  type Outcome,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type PushContent,
  type SendTarget,
} from '../types.js';
import { fill } from '../shared/batches.js';
import { expiredOutcome, remainingTtlSeconds } from '../shared/expiry.js';
import { redactUrl } from '../shared/http.js';
import { createLimiter } from '../shared/limiter.js';
import { normaliseSmsToken, smsOverridesSchema, smsText, smsTokenSchema } from './common.js';
import { checkHttpCredential, httpSmsCredentialSchema, sendHttpSms } from './http.js';
import { checkTwilioCredential, parseTwilioReceipt, sendTwilioSms, TWILIO_DEFAULT_ENDPOINT, twilioSmsCredentialSchema, verifyTwilioReceipt } from './twilio.js';

/**
 * SMS: a device's phone number (`tokens.sms`, E.164) reached through one of two drivers, chosen
 * by the app's credential: `http` (any gateway, described by a request template) or `twilio`
 * (Twilio's Messages API). SMS is not a push channel: routing never picks it; a push reaches it
 * only when `options.channels` names it, or as the fallback of an undelivered push (docs/sms.md).
 */
export const smsCredentialSchema = z.discriminatedUnion('driver', [httpSmsCredentialSchema, twilioSmsCredentialSchema]);
export type SmsCredential = z.infer<typeof smsCredentialSchema>;

export const SMS_ENDPOINTS = {
  twilio: { env: 'TWILIO_ENDPOINT', default: TWILIO_DEFAULT_ENDPOINT, doc: 'Twilio REST API (the sms channel’s twilio driver)' },
  trusted: {
    env: 'SMS_HTTP_TRUSTED_URL',
    doc: 'The generic SMS driver may call this host (same scheme and host name, any port or path) even over http or on a private address; every other gateway URL must be https to a public address',
  },
} as const satisfies Record<string, EndpointSetting>;

/** Concurrent requests per credential: each SMS is one request. */
const CONCURRENCY = 8;

class SmsProvider implements Provider {
  readonly channel = 'sms' as const;
  private readonly limit = createLimiter(CONCURRENCY);
  private readonly twilioEndpoint: string;
  private readonly trusted: string | undefined;
  private closed = false;

  constructor(
    private readonly cred: SmsCredential,
    ctx: ProviderContext,
  ) {
    this.twilioEndpoint = endpointOf(ctx, SMS_ENDPOINTS, 'twilio').replace(/\/+$/, '');
    this.trusted = ctx.endpoints.trusted;
  }

  async send(content: PushContent, targets: readonly SendTarget[]): Promise<Outcome[]> {
    if (targets.length === 0) return [];
    if (this.closed) return fill(targets.length, retry({ code: RELAY_CODES.closed, message: 'the SMS provider is closed' }));
    if (remainingTtlSeconds(content.expiresAt) <= 0) return fill(targets.length, expiredOutcome(content.expiresAt));
    const text = smsText(content);
    if (!text) return fill(targets.length, failed({ code: RELAY_CODES.dataOnlyUnsupported, message: 'an SMS needs text: give overrides.sms.text or a notification title or body' }));
    return Promise.all(targets.map((t) => this.limit(() => this.sendOne(content.messageId, t.token, text))));
  }

  private async sendOne(messageId: string, to: string, text: string): Promise<Outcome> {
    try {
      if (this.cred.driver === 'twilio') return await sendTwilioSms(this.cred, this.twilioEndpoint, to, text);
      return await sendHttpSms(this.cred, { to, text, messageId }, this.trusted);
    } catch (err) {
      return retry({ code: RELAY_CODES.providerError, message: (err as Error).message });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const smsModule = {
  channel: 'sms' as const,
  wantsCallbackUrl: true as const,
  endpoints: SMS_ENDPOINTS,
  overridesSchema: smsOverridesSchema,
  tokenSchema: smsTokenSchema,
  normaliseToken: normaliseSmsToken,
  credentialSchema: smsCredentialSchema,
  checkCredential(cred) {
    if (cred.driver === 'http') checkHttpCredential(cred);
    else checkTwilioCredential(cred);
  },
  describe(cred) {
    if (cred.driver === 'http') {
      return { driver: 'http', url: redactUrl(cred.url), method: cred.method, bodyType: cred.bodyType, headers: Object.keys(cred.headers), ...(cred.qps ? { qps: cred.qps } : {}) };
    }
    return {
      driver: 'twilio',
      accountSid: cred.accountSid,
      ...(cred.from ? { from: cred.from } : {}),
      ...(cred.messagingServiceSid ? { messagingServiceSid: cred.messagingServiceSid } : {}),
      ...(cred.apiKeySid ? { apiKeySid: cred.apiKeySid } : {}),
      statusCallback: cred.statusCallback,
      ...(cred.callbackUrl ? { callbackUrl: redactUrl(cred.callbackUrl) } : {}),
      ...(cred.qps ? { qps: cred.qps } : {}),
    };
  },
  create(cred, ctx) {
    return new SmsProvider(cred, ctx);
  },
  receipts: {
    // Only Twilio signs its status callbacks; the generic driver has no receipts.
    verify: (cred, req) => cred.driver === 'twilio' && verifyTwilioReceipt(cred, req),
    parse: parseTwilioReceipt,
  },
  qps: (cred) => cred.qps,
} satisfies ProviderModule<SmsCredential>;

export default smsModule;
