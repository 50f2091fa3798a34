import { CHANNELS, TOKEN_CHANNELS, normaliseToken, overridesSchema } from '../providers/channels.js';
import { APNS_PUSH_TYPES } from '../providers/types.js';
import { pushRequestSchemas } from './core/push-request.js';

/**
 * The push request's schemas bound to the channel registry: core/push-request.ts defines them for
 * any set of channels, this module hands it Relay's. Import the schemas from here, the types and
 * the channel-free parts (notification, retry policy, TTL constants) from core.
 */
export const { targetSchema, pushOptionsSchema, pushRequestSchema } = pushRequestSchemas({
  channels: CHANNELS,
  tokenChannels: TOKEN_CHANNELS,
  normaliseToken,
  overridesSchema,
  apnsPushTypes: APNS_PUSH_TYPES,
});
