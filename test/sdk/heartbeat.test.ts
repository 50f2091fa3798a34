/**
 * The smart-heartbeat state machine (sdk/src/heartbeat.ts) against a simulated NAT: a beat
 * after an idle interval `i` survives iff i < T. No timers; every case is deterministic.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_HEARTBEAT, SmartHeartbeat, resolveHeartbeat, type HeartbeatConfig, type HeartbeatMemory } from '../../sdk/src/index.js';

interface Trace {
  intervals: number[];
  oks: boolean[];
  saves: (HeartbeatMemory | null)[];
  hb: SmartHeartbeat;
}

/** Runs `beats` beats through a NAT of idle timeout T (seconds); a failed beat means a new connection. */
function simulate(cfg: Partial<HeartbeatConfig>, T: number, beats: number, memory?: HeartbeatMemory): Trace {
  const hb = new SmartHeartbeat(resolveHeartbeat(cfg), memory);
  const t: Trace = { intervals: [], oks: [], saves: [], hb };
  hb.connectionStarted();
  for (let i = 0; i < beats; i++) {
    const interval = hb.intervalSec;
    const ok = interval < T;
    const predicted = hb.nextAfterSuccess('probe');
    const out = hb.record(ok, interval, 'probe');
    if (ok) assert.equal(hb.intervalSec, predicted, 'the reported next interval is the one used after a success');
    if (out.save !== undefined) t.saves.push(out.save);
    t.intervals.push(interval);
    t.oks.push(ok);
    if (!ok) hb.connectionStarted();
  }
  return t;
}

const SCALED = { initialSec: 1, stepSec: 1, minSec: 0.5, maxSec: 60, marginSec: 0.2, trustBeats: 3, failLimit: 5 };

describe('convergence', () => {
  test('for every NAT timeout T: settles in [T − marginSec − resolutionSec, T)', () => {
    const cfg = resolveHeartbeat(SCALED);
    for (let T = 0.8; T <= 40; T += 0.05) {
      const t = simulate(SCALED, T, 300);
      const s = t.hb.intervalSec;
      assert.equal(t.hb.state, 'stable', `T ${T}`);
      assert.ok(s < T, `stable ${s} ≥ T ${T}`);
      assert.ok(s >= Math.min(cfg.maxSec, T - cfg.marginSec - cfg.resolutionSec) - 1e-9, `stable ${s} too far below T ${T}`);
    }
  });

  // marginSec + resolutionSec = 0.2 + 0.25: the 15 % target holds from T = 3 s up.
  for (const T of [3.3, 4.2, 5, 7.9, 12.5, 20]) {
    test(`scaled config, NAT ${T} s: stable within 15 % below T and remembered`, () => {
      const t = simulate(SCALED, T, 200);
      assert.equal(t.hb.state, 'stable');
      const s = t.hb.intervalSec;
      assert.ok(s < T && s >= 0.85 * T, `stable ${s} for T ${T}`);
      assert.equal(t.saves.length, 1);
      assert.equal(t.saves[0]!.intervalSec, s);
      // After settling, nothing fails any more.
      const settledAt = t.intervals.findIndex((v, i) => i > 0 && t.intervals.slice(i).every((x) => x === s));
      assert.ok(settledAt > 0);
      assert.ok(t.oks.slice(settledAt).every(Boolean));
    });
  }

  test('WeChat defaults on China Mobile (NAT 300 s): ~270–290 s', () => {
    const t = simulate(DEFAULT_HEARTBEAT, 300, 100);
    assert.equal(t.hb.state, 'stable');
    assert.ok(t.hb.intervalSec >= 255 && t.hb.intervalSec < 300, String(t.hb.intervalSec));
  });

  test('WeChat defaults on China Telecom (NAT 28 min): just under 1680 s', () => {
    const t = simulate(DEFAULT_HEARTBEAT, 1680, 200);
    assert.ok(t.hb.intervalSec >= 0.85 * 1680 && t.hb.intervalSec < 1680, String(t.hb.intervalSec));
    // Climbs in 60 s steps from 270 s.
    assert.deepEqual(t.intervals.slice(0, 6), [270, 270, 270, 330, 390, 450]);
  });

  test('a NAT longer than maxSec: settles at maxSec without a failure', () => {
    const t = simulate(DEFAULT_HEARTBEAT, 7200, 60);
    assert.equal(t.hb.intervalSec, 1740);
    assert.equal(t.hb.state, 'stable');
    assert.ok(t.oks.every(Boolean));
  });

  test('a NAT shorter than the start interval: bisects down, still within 15 %', () => {
    const t = simulate(DEFAULT_HEARTBEAT, 120, 100);
    assert.equal(t.hb.state, 'stable');
    assert.ok(t.hb.intervalSec >= 0.85 * 120 && t.hb.intervalSec < 120, String(t.hb.intervalSec));
    assert.deepEqual(t.intervals.slice(0, 2), [270, 165]);
  });
});

describe('the rules', () => {
  test('a connection earns trust with trustBeats beats at a proven interval before probing further', () => {
    const t = simulate({ ...SCALED, trustBeats: 3 }, 3.5, 12);
    // 1 ×3 (trust), 2, 3, 4 ✗ → new connection: 3 ×3 at the proven interval, then bisect 3.5 ✗ …
    assert.deepEqual(t.intervals.slice(0, 10), [1, 1, 1, 2, 3, 4, 3, 3, 3, 3.5]);
    assert.deepEqual(t.oks.slice(0, 10), [true, true, true, true, true, false, true, true, true, false]);
  });

  test('on a failure: largest success minus the margin, marked stable (resolution ≥ the gap)', () => {
    const t = simulate({ ...SCALED, resolutionSec: 1 }, 3.5, 10);
    assert.deepEqual(t.intervals.slice(0, 6), [1, 1, 1, 2, 3, 4]);
    assert.equal(t.hb.state, 'stable');
    assert.equal(t.hb.intervalSec, 3 - 0.2);
  });

  test('failLimit consecutive failures: backoff at minSec, memory forgotten, then probing again', () => {
    const memory = { intervalSec: 10, goodSec: 10.2, upperSec: 10.5 };
    const hb = new SmartHeartbeat(resolveHeartbeat(SCALED), memory);
    assert.equal(hb.state, 'stable');
    assert.equal(hb.intervalSec, 10);
    let out = {};
    for (let i = 0; i < 4; i++) {
      out = hb.record(false, 10, 'probe');
      assert.equal(hb.state, 'stable', 'failures count only when they repeat');
      hb.connectionStarted();
    }
    out = hb.record(false, 10, 'probe');
    assert.equal(hb.state, 'backoff');
    assert.deepEqual(out, { save: null });
    assert.equal(hb.intervalSec, 0.5);
    hb.connectionStarted();
    hb.record(true, 0.5, 'probe');
    hb.record(true, 0.5, 'probe');
    assert.equal(hb.state, 'backoff');
    hb.record(true, 0.5, 'probe');
    assert.equal(hb.state, 'probing');
    assert.equal(hb.intervalSec, 1.5);
  });

  test('a success resets the failure count', () => {
    const hb = new SmartHeartbeat(resolveHeartbeat(SCALED), { intervalSec: 10 });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) hb.record(false, 10, 'probe');
      hb.record(true, 10, 'probe');
    }
    assert.equal(hb.state, 'stable');
    assert.equal(hb.failures, 0);
  });

  test('a late beat that failed is not counted; a short beat proves nothing about the interval', () => {
    const hb = new SmartHeartbeat(resolveHeartbeat(SCALED), { intervalSec: 10 });
    for (let i = 0; i < 10; i++) hb.record(false, 10, 'late');
    assert.equal(hb.state, 'stable');
    assert.equal(hb.failures, 0);

    const p = new SmartHeartbeat(resolveHeartbeat(SCALED));
    for (let i = 0; i < 3; i++) p.record(true, 1, 'probe');
    assert.equal(p.intervalSec, 2);
    p.record(true, 2, 'short');
    assert.equal(p.intervalSec, 2, 'no step after a beat that followed other traffic');
    p.record(true, 2, 'late');
    assert.equal(p.intervalSec, 3, 'a late success proves at least the interval');
  });

  test('a stable interval is remembered only after trustBeats successes at it', () => {
    const t = simulate({ ...SCALED, resolutionSec: 1 }, 3.5, 7);
    // …4 ✗ settles at 2.8; the next beats at 2.8 are the trust beats.
    assert.equal(t.saves.length, 0);
    const more = simulate({ ...SCALED, resolutionSec: 1 }, 3.5, 9);
    assert.equal(more.saves.length, 1);
    assert.equal(more.saves[0]!.intervalSec, 2.8);
    assert.equal(more.saves[0]!.goodSec, 3);
    assert.equal(more.saves[0]!.upperSec, 4);
  });

  test('server advice is taken only for an unknown network before the first beat', () => {
    const fresh = new SmartHeartbeat(resolveHeartbeat(DEFAULT_HEARTBEAT));
    assert.equal(fresh.adoptAdvice(180), true);
    assert.equal(fresh.intervalSec, 180);
    assert.equal(fresh.adoptAdvice(9999), true);
    assert.equal(fresh.intervalSec, 1740, 'clamped to maxSec');
    fresh.record(true, 1740, 'probe');
    assert.equal(fresh.adoptAdvice(200), false);
    const known = new SmartHeartbeat(resolveHeartbeat(DEFAULT_HEARTBEAT), { intervalSec: 500 });
    assert.equal(known.adoptAdvice(200), false);
    assert.equal(known.intervalSec, 500);
  });

  test('config validation and defaults', () => {
    const d = resolveHeartbeat();
    assert.deepEqual(
      { ...d },
      { initialSec: 270, stepSec: 60, minSec: 60, maxSec: 1740, marginSec: 10, trustBeats: 3, failLimit: 5, ackTimeoutSec: 10, resolutionSec: 15 },
    );
    assert.equal(resolveHeartbeat({ initialSec: 1 }).minSec, 1, 'a small initialSec lowers the default floor');
    assert.equal(resolveHeartbeat({ initialSec: 1, minSec: 0.5 }).ackTimeoutSec, 1);
    assert.throws(() => resolveHeartbeat({ trustBeats: 1.5 }), RangeError);
    assert.throws(() => resolveHeartbeat({ stepSec: -1 }), RangeError);
    assert.throws(() => resolveHeartbeat({ maxSec: 70000 }), RangeError);
  });
});

describe('traffic as evidence', () => {
  test('a push after an idle spell proves that spell while probing; with traffic the search probes the nearest settling interval', () => {
    const hb = new SmartHeartbeat(resolveHeartbeat({ ...SCALED, resolutionSec: 0.25 }));
    hb.connectionStarted();
    assert.equal(hb.observeIdle(0.1), false, 'shorter than minSec: says nothing');
    for (const idle of [0.8, 0.9, 2.6]) assert.equal(hb.observeIdle(idle), true);
    // Trusted after three pieces of evidence: 2.6 s is proven, the next probe steps up from it.
    assert.equal(hb.intervalSec, 3.6);
    hb.record(false, 3.6, 'probe');
    hb.connectionStarted();
    for (const idle of [1, 1, 2.9]) hb.observeIdle(idle);
    // Bisection would try 3.25; traffic makes the search try 2.9 + 0.25, which settles it either way.
    assert.equal(hb.intervalSec, 2.9 + 0.25);
    hb.record(false, 3.15, 'probe');
    assert.equal(hb.state, 'stable');
    assert.equal(hb.intervalSec, 2.9 - 0.2);
    assert.equal(hb.observeIdle(3), false, 'settled: traffic changes nothing');
  });
});
