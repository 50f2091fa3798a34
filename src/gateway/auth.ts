import { verifyDeviceCredential } from '../core/device-token.js';
import type { Authenticate, DeviceIdentity } from './types.js';

/** The device's current credential epoch, or null when the device does not exist (any more). */
export type CurrentEpoch = (appId: string, deviceId: string) => Promise<string | null> | string | null;

/**
 * The default CONNECT check: client id = device id, password = the signed device token from
 * `PUT /v1/devices/:id`, username empty or equal to the device id. The signature is checked
 * without any I/O (garbage costs one HMAC); with `current`, the password's credential epoch must
 * also be the device's current one, so a deleted device or a rotated password is refused.
 */
export function deviceTokenAuthenticator(secret: string, current?: CurrentEpoch): Authenticate {
  return (clientId: string, username: string | undefined, password: Buffer | undefined): Promise<DeviceIdentity | null> | DeviceIdentity | null => {
    if (!clientId || !password || password.length === 0 || password.length > 512) return null;
    if (username && username !== clientId) return null;
    const cred = verifyDeviceCredential(secret, clientId, password.toString('utf8'));
    if (!cred) return null;
    const id = { appId: cred.appId, deviceId: clientId };
    if (!current) return id;
    const epoch = current(cred.appId, clientId);
    if (typeof epoch === 'string' || epoch === null) return epoch === cred.epoch ? id : null;
    return epoch.then((e) => (e === cred.epoch ? id : null));
  };
}
