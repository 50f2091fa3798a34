import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Self-channel device passwords: `<appId>.<base64url HMAC-SHA256(secret, "dev:" appId ":" deviceId)>`.
 * The app id travels in clear so a gateway can verify a CONNECT without a database round trip;
 * the device id is the MQTT client id. Rotating DEVICE_TOKEN_SECRET invalidates every password.
 */
export function signDeviceToken(secret: string, appId: string, deviceId: string): string {
  return `${appId}.${mac(secret, appId, deviceId)}`;
}

/** Returns the app id when the password is valid for that device, else null. */
export function verifyDeviceToken(secret: string, deviceId: string, password: string): string | null {
  const dot = password.lastIndexOf('.');
  if (dot <= 0) return null;
  const appId = password.slice(0, dot);
  const given = Buffer.from(password.slice(dot + 1));
  const expected = Buffer.from(mac(secret, appId, deviceId));
  return given.length === expected.length && timingSafeEqual(given, expected) ? appId : null;
}

function mac(secret: string, appId: string, deviceId: string): string {
  return createHmac('sha256', secret).update(`dev:${appId}:${deviceId}`).digest('base64url');
}
