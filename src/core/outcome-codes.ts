/**
 * The outcome codes Relay itself writes into a delivery's `error.code`, in one place. A provider's
 * own codes (APNs `BadDeviceToken`, FCM `UNREGISTERED`, Huawei `80100000`, …) are passed through
 * as the provider spells them; these are the ones no provider sent.
 */
export const RELAY_CODES = {
  /** The message's TTL ended before it could be sent, retried or acked. */
  expired: 'expired',
  /** The provider client was closed (credential changed, shutdown) while the batch waited: retried. */
  closed: 'closed',
  /** The app has no credentials for the channel. */
  noChannel: 'NoChannel',
  /** The token was quarantined by an earlier provider answer. */
  tokenQuarantined: 'TokenQuarantined',
  /**
   * A vendor's daily quota refused the message: a per-device cap (marketing messages), or the
   * app's daily total (vivo 10070, OPPO 33; the app then skips the vendor until its reset, see
   * docs/quota-days.md). Not retried today; `quotaFallback` may send it over another channel.
   */
  quota: 'quota',
  /** The app's SMS for the day (SMS_DAILY_CAP, UTC days) are used up: not sent, not retried. */
  smsDailyCap: 'SmsDailyCap',
  /** The generic SMS driver's URL is not https to a public address (and not the operator's trusted host). */
  smsUrlRefused: 'SmsUrlRefused',
  /** The payload is larger than the channel allows (checked before sending). */
  payloadTooLarge: 'PayloadTooLarge',
  /** The channel carries notifications only, and the message has only data. */
  dataOnlyUnsupported: 'DataOnlyUnsupported',
  /** The stored credential cannot be used (a key that does not sign, a client that cannot be made). */
  invalidCredential: 'InvalidCredential',
  /** The request failed below HTTP (reset, refused, TLS): retried. */
  transportError: 'TransportError',
  /** No answer within the provider's time limit: retried. */
  timeout: 'Timeout',
  /** The provider's OAuth endpoint failed or answered nonsense. */
  authError: 'OAuthError',
  /** The provider code threw, or returned no outcome for a token: retried. */
  providerError: 'ProviderError',
  noOutcome: 'NoOutcome',
  /** A batch answer had no row for this target: retried. */
  missingResult: 'missing_result',
  /** Self channel: the device is not registered (any more). */
  unknownDevice: 'UnknownDevice',
  /** Self channel: the payload cannot be serialised. */
  invalidPayload: 'InvalidPayload',
  /** Self channel: no sequence number could be assigned (PostgreSQL unavailable): retried. */
  seqUnavailable: 'SeqUnavailable',
  /** Self channel: the gateway bus (Redis) could not be reached: retried. */
  gatewayBusUnavailable: 'GatewayBusUnavailable',
  /** Self channel: the device answered the PUBLISH with a failure reason code. */
  refusedByDevice: 'RefusedByDevice',
  /** Web Push: the subscription JSON cannot be sent to. */
  badSubscription: 'BadSubscription',
  /** Web Push: the push service answered with a redirect, which is not followed. */
  redirect: 'Redirect',
} as const;

export type RelayCode = (typeof RELAY_CODES)[keyof typeof RELAY_CODES];

/** The code for an HTTP answer that carried no code of the provider's own: `HTTP503`. */
export const httpStatusCode = (status: number): string => `HTTP${status}`;
