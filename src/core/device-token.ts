import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Self-channel device passwords: `<appId>.<epoch>.<base64url HMAC-SHA256(secret, "dev:" appId ":"
 * deviceId ":" epoch)>`. The app id travels in clear so a gateway can verify a CONNECT without a
 * database round trip; the device id is the MQTT client id. The epoch is the device's credential
 * version (`devices.credential_epoch`): deleting the device or rotating its password moves it on,
 * and a password of another epoch is refused (see src/self/device-credentials.ts).
 * Epoch 0 (devices registered before credential versions existed) keeps the original
 * `<appId>.<mac>` form, so their passwords stay valid until rotated.
 * Rotating DEVICE_TOKEN_SECRET invalidates every password.
 */
export function signDeviceToken(secret: string, appId: string, deviceId: string, epoch = '0'): string {
  return epoch === '0' ? `${appId}.${mac(secret, appId, deviceId, epoch)}` : `${appId}.${epoch}.${mac(secret, appId, deviceId, epoch)}`;
}

/** The app id and credential epoch a password was signed for, when it is valid for that device. */
export function verifyDeviceCredential(secret: string, deviceId: string, password: string): { appId: string; epoch: string } | null {
  const parts = password.split('.');
  if (parts.length < 2 || parts.length > 3 || !parts[0]) return null;
  const appId = parts[0];
  const epoch = parts.length === 3 ? parts[1]! : '0';
  if (!/^(0|[1-9]\d{0,18})$/.test(epoch) || (parts.length === 3 && epoch === '0')) return null;
  const given = Buffer.from(parts[parts.length - 1]!);
  const expected = Buffer.from(mac(secret, appId, deviceId, epoch));
  return given.length === expected.length && timingSafeEqual(given, expected) ? { appId, epoch } : null;
}

/** Returns the app id when the password's signature is valid for that device, else null (any epoch). */
export function verifyDeviceToken(secret: string, deviceId: string, password: string): string | null {
  return verifyDeviceCredential(secret, deviceId, password)?.appId ?? null;
}

function mac(secret: string, appId: string, deviceId: string, epoch: string): string {
  return createHmac('sha256', secret).update(epoch === '0' ? `dev:${appId}:${deviceId}` : `dev:${appId}:${deviceId}:${epoch}`).digest('base64url');
}
