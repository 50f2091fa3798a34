import { verifyDeviceToken } from '../core/device-token.js';
import type { Authenticate, DeviceIdentity } from './types.js';

/**
 * The default CONNECT check: client id = device id, password = the signed device token from
 * `PUT /v1/devices/:id`, username empty or equal to the device id. Stateless (no database):
 * the lead may wrap it to also check that the device still exists.
 */
export function deviceTokenAuthenticator(secret: string): Authenticate {
  return (clientId: string, username: string | undefined, password: Buffer | undefined): DeviceIdentity | null => {
    if (!clientId || !password || password.length === 0 || password.length > 512) return null;
    if (username && username !== clientId) return null;
    const appId = verifyDeviceToken(secret, clientId, password.toString('utf8'));
    return appId ? { appId, deviceId: clientId } : null;
  };
}
