import { CoalescedWriter, readJson, type RelayStore } from './store.js';

/** What the SDK did with a message id. */
export const SHOWN = 1;
export const REVOKED = 2;
export type Fate = typeof SHOWN | typeof REVOKED;

interface Persisted {
  v: 1;
  /** Oldest first: [id, fate]. */
  ids: [string, Fate][];
  /** Highest self-channel / inbox seq seen: the `after` cursor of the inbox sync. */
  seq: number;
}

/**
 * The ids this device has already shown or seen revoked, across every channel (self, FCM,
 * vendors, inbox sync): a bounded LRU, written through to the store so a restarted app still
 * drops a redelivery. Also keeps the inbox cursor (highest seq).
 */
export class SeenIds {
  private readonly ids = new Map<string, Fate>();
  seq = 0;
  private readonly writer: CoalescedWriter;

  constructor(
    private readonly capacity: number,
    private readonly store: RelayStore,
    private readonly key: string,
  ) {
    this.writer = new CoalescedWriter(store, key, () => this.snapshot());
  }

  async load(): Promise<void> {
    const v = (await readJson(this.store, this.key)) as Partial<Persisted> | undefined;
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v.ids)) {
      for (const e of v.ids) {
        if (Array.isArray(e) && typeof e[0] === 'string' && (e[1] === SHOWN || e[1] === REVOKED)) this.ids.set(e[0], e[1]);
      }
      this.trim();
    }
    if (typeof v.seq === 'number' && Number.isFinite(v.seq)) this.seq = Math.max(this.seq, v.seq);
  }

  get(id: string): Fate | undefined {
    return this.ids.get(id);
  }

  get size(): number {
    return this.ids.size;
  }

  /** Records a fate (refreshing the entry's age) and persists; resolves once written. */
  set(id: string, fate: Fate): Promise<void> {
    this.ids.delete(id);
    this.ids.set(id, fate);
    this.trim();
    return this.writer.save();
  }

  /** Advances the inbox cursor (never backwards); persists when it moved. */
  advance(seq: number): Promise<void> | undefined {
    if (!Number.isFinite(seq) || seq <= this.seq) return undefined;
    this.seq = seq;
    return this.writer.save();
  }

  private trim(): void {
    while (this.ids.size > this.capacity) {
      const oldest = this.ids.keys().next().value as string;
      this.ids.delete(oldest);
    }
  }

  private snapshot(): Persisted {
    return { v: 1, ids: [...this.ids], seq: this.seq };
  }
}
