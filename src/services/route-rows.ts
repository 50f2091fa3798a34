import type { Channel } from '../../providers/types.js';
import { routeDevice, type Platform, type RoutableDevice, type RoutingContext } from '../routing.js';
import { RELAY_CODES } from '../core/outcome-codes.js';
import type { NewDeliveryRow } from '../db/deliveries-repo.js';

/** A device's delivery row: routed to its best channel, or failed with the reason it has none. */
export function deviceRow(d: { id: string; platform: Platform; brand: string | null; tokens: RoutableDevice['tokens'] }, online: boolean, ctx: RoutingContext): NewDeliveryRow {
  const route = routeDevice({ platform: d.platform, brand: d.brand, tokens: d.tokens, online }, ctx);
  if (route.channel === null) {
    const message = route.reason === 'NoChannel' ? 'the app has no credentials for any channel this device has a token for' : 'the device has no active token for any usable channel';
    return { deviceId: d.id, platform: d.platform, channel: null, token: null, status: 'failed', error: { code: route.reason, message } };
  }
  return { deviceId: d.id, platform: d.platform, channel: route.channel, token: route.token, status: 'queued', error: null };
}

/** The one delivery row of a push to a raw token (`to.token`). */
export function tokenRow(channel: string, value: string, quarantined: boolean, configured: ReadonlySet<Channel>): NewDeliveryRow {
  const row: NewDeliveryRow = { deviceId: '', platform: null, channel, token: value, status: 'queued', error: null };
  if (quarantined) return { ...row, status: 'failed', error: { code: RELAY_CODES.tokenQuarantined, message: 'the provider declared this token invalid earlier' } };
  if (!configured.has(channel as Channel)) return { ...row, status: 'failed', error: { code: RELAY_CODES.noChannel, message: `the app has no ${channel} credentials` } };
  return row;
}
