import { VENDOR_CHANNELS, type Channel } from '../providers/channels.js';
import * as core from './core/routing.js';

export type { AndroidStrategy, Platform, RoutableDevice, Route, RoutingContext } from './core/routing.js';

/** Routing (core/routing.ts) bound to the registry's vendor channels. */
const VENDORS: core.VendorSet = new Set<string>(VENDOR_CHANNELS);

/** The channels worth trying for a device, best first. */
export function preferredChannels(device: core.RoutableDevice, strategy?: core.AndroidStrategy): Channel[] {
  return core.preferredChannels(VENDORS, device, strategy);
}

/** Picks the first channel that has a usable token and credentials. */
export function routeDevice(device: core.RoutableDevice, ctx: core.RoutingContext): core.Route {
  return core.routeDevice(VENDORS, device, ctx);
}
