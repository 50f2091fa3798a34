/**
 * The SMS top-up of a push (`options.fallback.sms`, like Getui's 短信补量): when its window ends,
 * every device the push has not reached (`delivered` or `opened`) and that has an active sms token
 * gets one SMS. The SMS deliveries belong to a linked message, `<id>-sms`: a message holds one
 * delivery per device, and the push's own delivery stays what it is (it may still arrive).
 */
export const smsFallbackId = (messageId: string) => `${messageId}-sms`;
export const smsFallbackJobId = (messageId: string) => `smsfb.${messageId}`;
/** How long a top-up SMS may wait for its gateway (retries included) before it expires. */
export const SMS_FALLBACK_TTL_MS = 3_600_000;
