/**
 * The smart heartbeat (WeChat's 智能心跳, SPEC §6, notes §3.3) as a pure state machine: no
 * timers, no I/O. The device feeds it beat results and asks it which interval to wait next;
 * the same code therefore runs in tests against a simulated NAT.
 *
 * - probing: a new connection first survives `trustBeats` beats at a known-safe interval (the
 *   start interval while nothing is proven, else the largest proven one); only then are longer
 *   intervals probed. Each success steps up by `stepSec` (one success proves an interval). The
 *   first failure gives an upper bound; the search then bisects between the largest success and
 *   the smallest failure until they are `resolutionSec` apart, and settles on the largest
 *   success minus `marginSec` (never the critical value itself).
 * - stable: beats at the settled interval; after `trustBeats` successes it is remembered for
 *   the network.
 * - backoff: `failLimit` consecutive failures (anywhere) mean the network changed: forget it,
 *   beat at `minSec`, and once `trustBeats` beats succeed there, probe upwards again.
 *
 * A beat that went out late (timer throttled, device asleep) or after other traffic proves
 * nothing about the interval: a late failure is not counted at all, a short success only
 * keeps the connection trusted.
 *
 * Traffic is evidence too. A NAT counts idle time from the last packet in either direction, so
 * a push that reaches the device after the link sat idle for g proves that the mapping outlives
 * g (`observeIdle`), exactly as a beat of g would have. Under steady traffic beats are rare (each
 * push restarts the wait), and these free probes are what lets the search converge.
 */

export interface HeartbeatConfig {
  /** Start interval when this network is unknown (WeChat's minHeart, 270 s). */
  initialSec: number;
  /** Probe step (60 s). */
  stepSec: number;
  /** Floor, and the back-off interval (60 s). */
  minSec: number;
  /** Ceiling (1740 s: just under China Telecom's ~28 min NAT timeout). */
  maxSec: number;
  /** Distance kept from the largest proven interval (10 s). */
  marginSec: number;
  /** Successes a connection needs before its probes count, and a stable interval before it is remembered (3). */
  trustBeats: number;
  /** Consecutive failures that send the heartbeat to back-off (5). */
  failLimit: number;
  /** A beat not acked within this is a failure. Default min(10, max(1, minSec / 2)). */
  ackTimeoutSec: number;
  /**
   * Bisection stops when the largest success and the smallest failure are this close.
   * Default min(2 × marginSec, stepSec / 4). The settled interval is ≥ T − marginSec − resolutionSec
   * for a NAT timeout T: for "within 15 % below T" keep marginSec + resolutionSec ≤ 0.15 × T
   * (WeChat's numbers: 10 + 15 s against China Mobile's 300 s).
   */
  resolutionSec: number;
}

export type HeartbeatState = 'probing' | 'stable' | 'backoff';

/**
 * How a beat relates to its interval:
 * - probe: the link really was idle for (about) the interval before it;
 * - short: other traffic came in between, so the link was idle for less;
 * - late: the timer fired well after the interval (throttled timers, sleep), so it was idle for more.
 */
export type BeatKind = 'probe' | 'short' | 'late';

/** What is remembered per network. */
export interface HeartbeatMemory {
  intervalSec: number;
  /** Largest interval proven on the network. */
  goodSec?: number;
  /** Smallest interval that failed. */
  upperSec?: number;
  savedAt?: number;
}

export const DEFAULT_HEARTBEAT = Object.freeze({
  initialSec: 270,
  stepSec: 60,
  minSec: 60,
  maxSec: 1740,
  marginSec: 10,
  trustBeats: 3,
  failLimit: 5,
});

export function resolveHeartbeat(given: Partial<HeartbeatConfig> = {}): HeartbeatConfig {
  const num = (name: keyof HeartbeatConfig, v: number | undefined, def: number, min: number): number => {
    const x = v ?? def;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min) throw new RangeError(`heartbeat.${name} must be a number ≥ ${min}, got ${String(v)}`);
    return x;
  };
  const int = (name: keyof HeartbeatConfig, v: number | undefined, def: number): number => {
    const x = num(name, v, def, 1);
    if (!Number.isInteger(x)) throw new RangeError(`heartbeat.${name} must be an integer, got ${x}`);
    return x;
  };
  const minSec = num('minSec', given.minSec, Math.min(DEFAULT_HEARTBEAT.minSec, given.initialSec ?? Infinity), 0.05);
  const maxSec = num('maxSec', given.maxSec, Math.max(DEFAULT_HEARTBEAT.maxSec, given.initialSec ?? 0), minSec);
  if (maxSec > 65535) throw new RangeError('heartbeat.maxSec must be ≤ 65535 (a 16-bit MQTT keep alive)');
  const initialSec = Math.min(maxSec, Math.max(minSec, num('initialSec', given.initialSec, DEFAULT_HEARTBEAT.initialSec, 0.05)));
  const marginSec = num('marginSec', given.marginSec, DEFAULT_HEARTBEAT.marginSec, 0);
  const stepSec = num('stepSec', given.stepSec, DEFAULT_HEARTBEAT.stepSec, 0.01);
  return {
    initialSec,
    stepSec,
    minSec,
    maxSec,
    marginSec,
    trustBeats: int('trustBeats', given.trustBeats, DEFAULT_HEARTBEAT.trustBeats),
    failLimit: int('failLimit', given.failLimit, DEFAULT_HEARTBEAT.failLimit),
    ackTimeoutSec: num('ackTimeoutSec', given.ackTimeoutSec, Math.min(10, Math.max(1, minSec / 2)), 0.01),
    resolutionSec: num('resolutionSec', given.resolutionSec, marginSec > 0 ? Math.min(2 * marginSec, stepSec / 4) : stepSec / 4, 0.001),
  };
}

export interface BeatOutcome {
  /** The memory to write for this network; null to forget it; absent when nothing changed. */
  save?: HeartbeatMemory | null;
}

export class SmartHeartbeat {
  state: HeartbeatState = 'probing';
  /** The candidate interval while nothing is proven yet. */
  private start: number;
  /** Largest interval proven (0: none). */
  private good = 0;
  /** Smallest interval that failed (Infinity: none). */
  private upper = Infinity;
  private stable = 0;
  /** Successes on the current connection. */
  private warm = 0;
  /** Consecutive counted failures. */
  private fails = 0;
  /** Consecutive successes at the stable interval. */
  private okStable = 0;
  /** Beats recorded so far. */
  private beats = 0;
  /** The stable interval is in the store. */
  private saved = false;
  /** Pushes have proven intervals while probing (observeIdle). */
  private traffic = false;

  constructor(
    readonly cfg: HeartbeatConfig,
    memory?: HeartbeatMemory | null,
  ) {
    this.start = cfg.initialSec;
    if (memory && Number.isFinite(memory.intervalSec) && memory.intervalSec > 0) {
      this.state = 'stable';
      this.stable = this.clamp(memory.intervalSec);
      this.good = typeof memory.goodSec === 'number' && memory.goodSec >= this.stable ? memory.goodSec : this.stable;
      this.upper = typeof memory.upperSec === 'number' && memory.upperSec > this.good ? memory.upperSec : Infinity;
      this.saved = true;
    }
  }

  /** The interval the next beat waits, in seconds. */
  get intervalSec(): number {
    switch (this.state) {
      case 'stable':
        return this.stable;
      case 'backoff':
        return this.cfg.minSec;
      default:
        if (this.good === 0) return this.start;
        if (this.warm < this.cfg.trustBeats) return this.good;
        if (this.upper === Infinity) return Math.min(this.cfg.maxSec, this.good + this.cfg.stepSec);
        // With traffic flowing, successes come free (observeIdle) while every failed probe costs
        // a mapping and a reconnect: probe the nearest interval that can settle the search, so
        // that one more failure ends it. A quiet link bisects (fewest beats).
        return this.good + (this.traffic ? Math.min(this.cfg.resolutionSec, (this.upper - this.good) / 2) : (this.upper - this.good) / 2);
    }
  }

  /** Consecutive counted failures so far. */
  get failures(): number {
    return this.fails;
  }

  /** A (re)connection: its beats must earn trust again. */
  connectionStarted(): void {
    this.warm = 0;
  }

  /**
   * The server's keep-alive advice (MQTT 5 Server Keep Alive / `$relay/heartbeat` adviseSec).
   * Taken as the start interval only while this network is unknown and no beat has been sent.
   */
  adoptAdvice(sec: number): boolean {
    if (this.state !== 'probing' || this.good !== 0 || this.upper !== Infinity || this.beats !== 0) return false;
    if (!Number.isFinite(sec) || sec <= 0) return false;
    const s = this.clamp(sec);
    if (s === this.start) return false;
    this.start = s;
    return true;
  }

  /** The interval that follows if the beat now being sent succeeds (what the beat reports to the server). */
  nextAfterSuccess(kind: BeatKind): number {
    const twin = Object.assign(Object.create(SmartHeartbeat.prototype) as SmartHeartbeat, this);
    twin.record(true, this.intervalSec, kind);
    return twin.intervalSec;
  }

  /**
   * A push arrived after the link was idle `idleSec` in both directions: the mapping survived
   * that long. While probing it counts as a successful beat of `idleSec` (trust included: under
   * steady traffic real beats are rare, and a connection would take many pushes to earn trust
   * otherwise), and an earlier failure at or below it was not the NAT's doing. It changes nothing
   * once stable or in back-off. Returns whether it was taken.
   */
  observeIdle(idleSec: number): boolean {
    if (this.state !== 'probing' || !Number.isFinite(idleSec) || idleSec < this.cfg.minSec) return false;
    if (idleSec >= this.upper && this.warm >= this.cfg.trustBeats) this.upper = Infinity;
    this.traffic = true;
    this.success(idleSec, 'probe');
    return true;
  }

  /** Records a beat that waited `intervalSec` and was acked (ok) or not. */
  record(ok: boolean, intervalSec: number, kind: BeatKind): BeatOutcome {
    this.beats++;
    return ok ? this.success(intervalSec, kind) : this.failure(intervalSec, kind);
  }

  private success(interval: number, kind: BeatKind): BeatOutcome {
    const cfg = this.cfg;
    this.fails = 0;
    this.warm++;
    const trusted = this.warm >= cfg.trustBeats && kind !== 'short';
    if (this.state === 'probing') {
      if (trusted && interval > this.good) this.good = interval;
      if (this.good > 0) {
        if (this.good >= cfg.maxSec) this.settle(cfg.maxSec);
        else if (this.upper - this.good <= cfg.resolutionSec) this.settle(this.good);
      }
    } else if (this.state === 'stable') {
      if (interval === this.stable && kind !== 'short') this.okStable++;
      if (!this.saved && this.okStable >= cfg.trustBeats) {
        this.saved = true;
        return { save: this.memory() };
      }
    } else if (trusted) {
      // backoff: minSec holds again, so look for a longer interval once more.
      this.state = 'probing';
      this.good = cfg.minSec;
      this.upper = Infinity;
    }
    return {};
  }

  private failure(interval: number, kind: BeatKind): BeatOutcome {
    const cfg = this.cfg;
    this.warm = 0;
    this.okStable = 0;
    if (kind === 'late') return {}; // idle longer than planned: says nothing about the interval
    this.fails++;
    if (this.fails >= cfg.failLimit) {
      const wasSaved = this.saved;
      this.state = 'backoff';
      this.good = 0;
      this.upper = Infinity;
      this.stable = 0;
      this.saved = false;
      this.fails = 0;
      return wasSaved ? { save: null } : {};
    }
    if (this.state === 'probing' && kind === 'probe' && (this.good === 0 || interval > this.good)) {
      this.upper = Math.min(this.upper, interval);
      if (this.good > 0) {
        if (this.upper - this.good <= cfg.resolutionSec) this.settle(this.good);
      } else {
        // Even the start interval failed: bisect towards minSec.
        const next = (cfg.minSec + this.upper) / 2;
        this.start = next - cfg.minSec < cfg.resolutionSec ? cfg.minSec : next;
      }
    }
    return {};
  }

  private settle(good: number): void {
    const cfg = this.cfg;
    this.state = 'stable';
    this.stable = good >= cfg.maxSec ? cfg.maxSec : Math.max(cfg.minSec, good - cfg.marginSec);
    this.okStable = 0;
    this.saved = false;
  }

  private memory(): HeartbeatMemory {
    const m: HeartbeatMemory = { intervalSec: this.stable, goodSec: this.good, savedAt: Date.now() };
    if (this.upper < Infinity) m.upperSec = this.upper;
    return m;
  }

  private clamp(sec: number): number {
    return Math.min(this.cfg.maxSec, Math.max(this.cfg.minSec, sec));
  }
}
