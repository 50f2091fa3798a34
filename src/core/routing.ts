import type { Channel, VendorChannel } from '../../providers/channels.js';

export type Platform = 'ios' | 'android' | 'web';

export interface RoutableDevice {
  platform: Platform;
  brand: string | null;
  /** Active tokens only: quarantined tokens never reach routing. */
  tokens: Partial<Record<Channel, string>>;
  /** The device holds a live self-channel connection right now. */
  online: boolean;
}

export type AndroidStrategy = 'self-first' | 'vendor-first' | 'vendor-only';

export interface RoutingContext {
  /** Channels the app has credentials for (`self` needs none). */
  configured: ReadonlySet<Channel>;
  /** The app's Android policy (default `self-first`). */
  strategy?: AndroidStrategy;
  /** `options.channels` from the request: tried in this order, nothing else. */
  pinned?: readonly Channel[];
}

export type Route = { channel: Channel; token: string | null } | { channel: null; reason: 'NoActiveToken' | 'NoChannel' };

/**
 * The Android makers' own channels, by the `brand` a device reports. Handed in (src/routing.ts
 * binds the registry's), so core knows no provider.
 */
export type VendorSet = ReadonlySet<string>;

const isVendor = (vendors: VendorSet, c: string): c is VendorChannel => vendors.has(c);

/**
 * The channels worth trying for a device, best first (README: Channels and credentials): iOS → APNs (or FCM for an app that
 * registered its iOS devices through Firebase and has only an FCM token); web → Web Push;
 * Android → self when online, then its brand's vendor channel, then FCM.
 */
export function preferredChannels(vendors: VendorSet, device: RoutableDevice, strategy: AndroidStrategy = 'self-first'): Channel[] {
  switch (device.platform) {
    case 'ios':
      return ['apns', 'fcm'];
    case 'web':
      return ['webpush', ...(device.online ? (['self'] as const) : [])];
    case 'android': {
      const brand = device.brand?.toLowerCase() ?? '';
      const vendor: Channel[] = isVendor(vendors, brand) ? [brand] : [];
      const self: Channel[] = device.online ? ['self'] : [];
      if (strategy === 'vendor-only') return [...vendor, 'fcm'];
      if (strategy === 'vendor-first') return [...vendor, ...self, 'fcm'];
      return [...self, ...vendor, 'fcm'];
    }
  }
}

/** Picks the first channel that has a usable token and credentials. */
export function routeDevice(vendors: VendorSet, device: RoutableDevice, ctx: RoutingContext): Route {
  const order = ctx.pinned ?? preferredChannels(vendors, device, ctx.strategy);
  let sawCredentialGap = false;
  for (const channel of order) {
    if (channel === 'self') {
      // A pinned self channel also serves offline devices: the gateway keeps the message until TTL.
      if (device.platform !== 'ios' && (device.online || ctx.pinned)) return { channel, token: null };
      continue;
    }
    const token = device.tokens[channel];
    if (!token) continue;
    if (!ctx.configured.has(channel)) {
      sawCredentialGap = true;
      continue;
    }
    return { channel, token };
  }
  return { channel: null, reason: sawCredentialGap ? 'NoChannel' : 'NoActiveToken' };
}
