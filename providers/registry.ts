import type { Logger } from 'pino';
import { PROVIDER_MODULES, type Channel } from './channels.js';
import type { Provider, ProviderContext } from './types.js';

export { PROVIDER_MODULES, providerModule } from './channels.js';

export interface CredentialSource {
  load(appId: string, provider: string): Promise<{ version: number; credential: unknown } | null>;
  version(appId: string, provider: string): Promise<number | null>;
}

interface Entry {
  version: number;
  provider: Provider;
  /** Tokens per second the vendor allows this credential, when it publishes a limit. */
  qps: number | undefined;
  checkedAt: number;
}

/** A channel that needs no credentials (the self channel): one provider per app, made on first use. */
export type BuiltinFactory = (appId: string) => Provider;

/**
 * One long-lived provider client per (app, channel), rebuilt when the app's credential changes.
 * A credential's version is re-read at most every `recheckMs`, so a send job costs no extra query.
 * Built-in channels have no credential: their factory runs once per app.
 */
export class ProviderRegistry {
  private readonly entries = new Map<string, Promise<Entry | null>>();
  private readonly builtinProviders = new Map<string, Provider>();

  constructor(
    private readonly source: CredentialSource,
    private readonly ctx: ProviderContext,
    private readonly builtins: Partial<Record<Channel, BuiltinFactory>> = {},
    private readonly recheckMs = 10_000,
    private readonly logger?: Logger,
  ) {}

  async get(appId: string, channel: Channel): Promise<Provider | null> {
    return (await this.entry(appId, channel))?.provider ?? null;
  }

  async qps(appId: string, channel: Channel): Promise<number | undefined> {
    return (await this.entry(appId, channel))?.qps;
  }

  private async entry(appId: string, channel: Channel): Promise<Pick<Entry, 'provider' | 'qps'> | null> {
    const key = `${appId}\u0000${channel}`;
    const factory = this.builtins[channel];
    if (factory) {
      let provider = this.builtinProviders.get(key);
      if (!provider) {
        provider = factory(appId);
        this.builtinProviders.set(key, provider);
      }
      return { provider, qps: undefined };
    }
    const cached = this.entries.get(key);
    if (cached) {
      const entry = await cached;
      if (entry && Date.now() - entry.checkedAt < this.recheckMs) return entry;
      const version = await this.source.version(appId, channel);
      if (entry && version === entry.version) {
        entry.checkedAt = Date.now();
        return entry;
      }
      if (this.entries.get(key) === cached) this.entries.delete(key);
      if (entry) void entry.provider.close().catch(() => undefined);
    }
    let pending = this.entries.get(key);
    if (!pending) {
      pending = this.build(appId, channel);
      this.entries.set(key, pending);
      pending.then((e) => e ?? this.entries.delete(key)).catch(() => this.entries.delete(key));
    }
    return pending;
  }

  private async build(appId: string, channel: Channel): Promise<Entry | null> {
    const mod = PROVIDER_MODULES[channel];
    if (!mod) return null;
    const stored = await this.source.load(appId, channel);
    if (!stored) return null;
    const credential = mod.credentialSchema.parse(stored.credential);
    this.logger?.debug({ appId, channel, version: stored.version }, 'provider client created');
    return { version: stored.version, provider: mod.create(credential, this.ctx), qps: mod.qps?.(credential), checkedAt: Date.now() };
  }

  async close(): Promise<void> {
    const all = await Promise.all([...this.entries.values()].map((p) => p.catch(() => null)));
    this.entries.clear();
    const builtins = [...this.builtinProviders.values()];
    this.builtinProviders.clear();
    await Promise.all([...all.map((e) => e?.provider), ...builtins].map((p) => p?.close().catch(() => undefined)));
  }
}
