import type { Logger } from 'pino';
import { takeBatch } from '../core/registration-batch.js';
import { deviceKey as keyOf, registrationShape, type DevicesRepo, type Registered, type Registration } from '../db/devices-repo.js';
import { isDataError } from '../db/pg-errors.js';

/** Registrations stored per statement; more wait for the next one. */
const MAX_BATCH = 500;
/**
 * Batches being written at once. While they are, new registrations wait and are written together
 * when one finishes: under load a batch grows to what arrived during one statement's round trip
 * (requests reach the handler over many event-loop turns, each after its own auth and rate-limit
 * round trips, so a turn alone groups few), and a lone registration still goes out within WINDOW_MS.
 */
const MAX_IN_FLIGHT = 2;
/**
 * Registrations of one device per batch: each is a statement of its own, written in turn, so a
 * client looping on one device id waits for the next batch beyond this rather than holding a
 * batch slot for hundreds of sequential statements.
 */
const MAX_ROUNDS = 3;
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
 * with the device as its own write left it; a device is in one batch at a time, at most
 * MAX_ROUNDS times (core/registration-batch.ts). A statement refused for its data (a bad row)
 * is retried in halves, one half after the other, so one bad registration fails alone at the
 * cost of a few statements and one connection; any other failure (timeout, cancel, lost
 * connection) fails every registration of the statement: retrying them one by one would take
 * the pool from everything else just when the database struggles.
 */
export class DeviceRegistrations {
  private waiting: Waiting[] = [];
  private scheduled = false;
  private inFlight = 0;
  /** Devices (app and id) of the batches being written. */
  private readonly busy = new Set<string>();

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
    const { batch, rest } = takeBatch(this.waiting, deviceKey, this.busy, MAX_BATCH, MAX_ROUNDS);
    // All waiting devices are being written: the batch that writes them kicks when it ends.
    if (batch.length === 0) return;
    this.waiting = rest;
    const keys = new Set(batch.map(deviceKey));
    for (const k of keys) this.busy.add(k);
    this.inFlight++;
    void this.store(batch).finally(() => {
      for (const k of keys) this.busy.delete(k);
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
      if (group.length === 1 || !isDataError(err)) {
        for (const w of group) w.reject(err);
        return;
      }
      // The statement wrote nothing: find the registrations that failed it by halves, in turn.
      this.logger?.warn({ err: (err as Error).message, n: group.length }, 'grouped device registration refused; retrying in halves');
      const half = Math.ceil(group.length / 2);
      await this.write(group.slice(0, half));
      await this.write(group.slice(half));
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
    const key = deviceKey(w);
    const n = times.get(key) ?? 0;
    times.set(key, n + 1);
    (out[n] ??= []).push(w);
  }
  return out;
}

function deviceKey(w: Waiting): string {
  return keyOf(w.reg.appId, w.reg.id);
}
