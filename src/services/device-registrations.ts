import type { Logger } from 'pino';
import { registrationShape, type DevicesRepo, type Registered, type Registration } from '../db/devices-repo.js';

/** Registrations stored per statement; more wait for the next one. */
const MAX_BATCH = 500;
/**
 * Batches being written at once. While they are, new registrations wait and are written together
 * when one finishes: under load a batch grows to what arrived during one statement's round trip
 * (requests reach the handler over many event-loop turns, each after its own auth and rate-limit
 * round trips, so a turn alone groups few), and a lone registration still goes out within WINDOW_MS.
 */
const MAX_IN_FLIGHT = 2;
/** How long the first registration of a batch waits for others to join its statement. */
const WINDOW_MS = 1;

interface Waiting {
  reg: Registration;
  resolve: (stored: Registered) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for `PUT /v1/devices/:id`: apps register on every launch, so a popular app's
 * morning is a storm of them. The registrations that arrive within WINDOW_MS of each other (or
 * while MAX_IN_FLIGHT batches are being written) are stored by one statement per shape (the
 * columns they write; an SDK sends the same shape every time) instead of one statement and one
 * commit each, as services/direct-push.ts groups single pushes.
 *
 * A device named twice in one batch is written in arrival order, one statement per repeat (a
 * statement cannot update a row twice), so the last write wins and each request is answered
 * with the device as its own write left it. A statement that fails is retried one registration
 * at a time, so one bad registration fails alone.
 */
export class DeviceRegistrations {
  private waiting: Waiting[] = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly repo: DevicesRepo,
    private readonly logger?: Logger,
  ) {}

  /** Stores one registration; resolves with the device as stored. */
  register(reg: Registration): Promise<Registered> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ reg, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT || this.waiting.length === 0) return;
    this.scheduled = true;
    setTimeout(() => this.flush(), WINDOW_MS);
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.waiting.splice(0, MAX_BATCH);
    if (batch.length === 0) return;
    this.inFlight++;
    void this.store(batch).finally(() => {
      this.inFlight--;
      this.kick();
    });
    this.kick();
  }

  private async store(batch: Waiting[]): Promise<void> {
    for (const round of rounds(batch)) {
      const byShape = new Map<string, Waiting[]>();
      for (const w of round) {
        const shape = registrationShape(w.reg.input);
        byShape.set(shape, [...(byShape.get(shape) ?? []), w]);
      }
      await Promise.all([...byShape.values()].map((group) => this.write(group)));
    }
  }

  private async write(group: Waiting[]): Promise<void> {
    try {
      const stored = await this.repo.upsertMany(group.map((w) => w.reg));
      group.forEach((w, i) => w.resolve(stored[i]!));
    } catch (err) {
      if (group.length === 1) {
        group[0]!.reject(err);
        return;
      }
      // The statement wrote nothing: find the registration that failed it by storing each alone.
      this.logger?.warn({ err: (err as Error).message, n: group.length }, 'grouped device registration failed; storing one at a time');
      await Promise.all(group.map((w) => this.write([w])));
    }
  }
}

/**
 * Splits a turn's registrations into rounds in which each device appears once: a device's first
 * registration goes in the first round, its second in the second, and so on (arrival order).
 */
function rounds(batch: Waiting[]): Waiting[][] {
  const out: Waiting[][] = [];
  const times = new Map<string, number>();
  for (const w of batch) {
    const key = `${w.reg.appId}\u0000${w.reg.id}`;
    const n = times.get(key) ?? 0;
    times.set(key, n + 1);
    (out[n] ??= []).push(w);
  }
  return out;
}
