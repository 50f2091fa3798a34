/**
 * Persistence the app may hand in: anything with get/set, sync or async — a Map, a wrapper
 * around localStorage, React Native AsyncStorage, a file. Values written are JSON strings.
 */
export interface RelayStore {
  get(key: string): unknown;
  set(key: string, value: string): unknown;
}

/** The default store: memory only, lost with the process. */
export class MemoryStore implements RelayStore {
  private readonly map = new Map<string, string>();
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  set(key: string, value: string): void {
    this.map.set(key, value);
  }
}

/** Reads a JSON value written by writeJson (a store may also hand back the parsed object). */
export async function readJson(store: RelayStore, key: string): Promise<unknown> {
  const raw = await store.get(key);
  if (typeof raw !== 'string') return raw ?? undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

export async function writeJson(store: RelayStore, key: string, value: unknown): Promise<void> {
  await store.set(key, JSON.stringify(value));
}

/**
 * Serialises writes of one key and coalesces bursts: a save() while another is waiting joins it,
 * and the value is taken when the write starts, so it includes everything changed before.
 */
export class CoalescedWriter {
  private queued: Promise<void> | null = null;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: RelayStore,
    private readonly key: string,
    private readonly snapshot: () => unknown,
  ) {}

  save(): Promise<void> {
    if (this.queued) return this.queued;
    const p = this.tail.then(() => {
      this.queued = null;
      return writeJson(this.store, this.key, this.snapshot());
    });
    this.queued = p;
    this.tail = p.catch(() => undefined);
    return p;
  }
}
