import pino from 'pino';
import { CHANNEL_MODULES } from '../../providers/channels.js';
import type { ChannelModule, ProviderContext } from '../../providers/types.js';

/** An endpoint no test provider may call: a port that refuses connections. */
export const NOWHERE = 'https://127.0.0.1:1';

export interface ProviderContextOptions {
  /** The endpoints a test points at its mocks; every other endpoint of every channel is {@link NOWHERE}. */
  endpoints?: Partial<ProviderContext['endpoints']>;
  /** Tuning knobs; the ones not given take the modules' defaults. */
  tuning?: Partial<ProviderContext['tuning']>;
  tls?: ProviderContext['tls'];
  /** Modules whose endpoint and tuning keys are filled in (default: the registry's). */
  modules?: readonly ChannelModule[];
}

/**
 * The one ProviderContext builder of the tests: derived from the channel modules, so a new channel's
 * endpoints are covered without editing any test. A provider that calls an endpoint its test did
 * not give fails to connect instead of reaching a real vendor.
 */
export function providerContext(opts: ProviderContextOptions = {}): ProviderContext {
  const endpoints: Record<string, string | undefined> = {};
  const tuning: Record<string, number | undefined> = {};
  for (const m of opts.modules ?? (CHANNEL_MODULES as readonly ChannelModule[])) {
    for (const key of Object.keys(m.endpoints ?? {})) endpoints[key] = NOWHERE;
    for (const [key, t] of Object.entries(m.tuning ?? {})) tuning[key] = t.default;
  }
  return {
    endpoints: { ...endpoints, ...opts.endpoints },
    tuning: { ...tuning, ...opts.tuning },
    ...(opts.tls ? { tls: opts.tls } : {}),
    logger: pino({ level: 'silent' }),
  };
}
