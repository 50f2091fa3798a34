export { GatewayServer } from './server.js';
export { deviceTokenAuthenticator, type CurrentEpoch } from './auth.js';
export { CONTROL_TOPIC, HEARTBEAT_TOPIC, deviceTopic } from './acl.js';
export { defaultAdviseKeepAlive, idleLimitMs } from './heartbeat.js';
export type {
  AdviseInput,
  Authenticate,
  DeliverMessage,
  DeviceIdentity,
  DropDetail,
  DropReason,
  GatewayHooks,
  GatewayOptions,
  OfflineReason,
  PendingDelivery,
  SessionInfo,
  SessionStore,
  Transport,
} from './types.js';
