export { RelayDevice, HEARTBEAT_TOPIC, CONTROL_TOPIC } from './device.js';
export type {
  Channel,
  ConnectedEvent,
  DisconnectReason,
  DisconnectedEvent,
  HeartbeatEvent,
  NotificationSurface,
  RelayDeviceEvents,
  RelayDeviceOptions,
  RelayDeviceStats,
  RelayMessage,
  RevokeEvent,
  Timers,
} from './device.js';
export { SmartHeartbeat, resolveHeartbeat, DEFAULT_HEARTBEAT } from './heartbeat.js';
export type { BeatKind, BeatOutcome, HeartbeatConfig, HeartbeatMemory, HeartbeatState } from './heartbeat.js';
export { MemoryStore } from './store.js';
export type { RelayStore } from './store.js';
export { RelayHttpError, deviceAuthorization } from './http.js';
export type { FetchLike } from './http.js';
export { normalize, RELAY_ID_KEY } from './payload.js';
export type { Incoming, Notification } from './payload.js';
