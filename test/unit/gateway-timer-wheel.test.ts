import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimerWheel } from '../../src/gateway/timer-wheel.js';

/** An entry whose real deadline moves with activity, like a session. */
class Conn {
  wheelTick = -1;
  fired: number[] = [];
  constructor(public deadline: number) {}
}

function wheel(start = 0, slots = 16) {
  return new TimerWheel<Conn>(
    100,
    (c, now) => {
      if (c.deadline > now) return c.deadline; // activity pushed it: re-arm lazily
      c.fired.push(now);
      return -1;
    },
    start,
    slots,
  );
}

test('fires at the first sweep at or after the deadline, never before', () => {
  const w = wheel();
  const c = new Conn(250);
  w.schedule(c, c.deadline);
  assert.equal(w.size, 1);
  w.advance(200);
  assert.deepEqual(c.fired, []);
  w.advance(299);
  assert.deepEqual(c.fired, []);
  w.advance(300);
  assert.deepEqual(c.fired, [300]);
  assert.equal(w.size, 0);
  assert.equal(c.wheelTick, -1);
});

test('activity (a later real deadline) re-arms lazily instead of firing', () => {
  const w = wheel();
  const c = new Conn(200);
  w.schedule(c, 200);
  c.deadline = 650; // packets arrived
  w.advance(200);
  assert.deepEqual(c.fired, []);
  assert.equal(w.size, 1);
  w.advance(600);
  assert.deepEqual(c.fired, []);
  w.advance(700);
  assert.deepEqual(c.fired, [700]);
});

test('scheduleEarlier moves a deadline forward only', () => {
  const w = wheel();
  const c = new Conn(1000);
  w.schedule(c, 1000);
  w.scheduleEarlier(c, 1500); // later: ignored
  assert.equal(c.wheelTick, 10);
  c.deadline = 300;
  w.scheduleEarlier(c, 300);
  assert.equal(c.wheelTick, 3);
  w.advance(300);
  assert.deepEqual(c.fired, [300]);
  assert.equal(w.size, 0);
});

test('deadlines beyond one round wait for their own round', () => {
  const w = wheel(0, 16); // a round is 1.6 s
  const c = new Conn(5000);
  w.schedule(c, 5000);
  for (let t = 100; t < 5000; t += 100) w.advance(t);
  assert.deepEqual(c.fired, []);
  w.advance(5000);
  assert.deepEqual(c.fired, [5000]);
});

test('a long stall fires everything overdue exactly once', () => {
  const w = wheel(0, 16);
  const conns = Array.from({ length: 50 }, (_, i) => new Conn(100 + i * 137));
  for (const c of conns) w.schedule(c, c.deadline);
  w.advance(60_000);
  assert.ok(conns.every((c) => c.fired.length === 1));
  assert.equal(w.size, 0);
});

test('unschedule and past deadlines', () => {
  const w = wheel(1000);
  const a = new Conn(1500);
  w.schedule(a, 1500);
  w.unschedule(a);
  w.unschedule(a);
  assert.equal(w.size, 0);
  w.advance(2000);
  assert.deepEqual(a.fired, []);
  const b = new Conn(0);
  w.schedule(b, 0); // in the past: next tick
  w.advance(2100);
  assert.deepEqual(b.fired, [2100]);
});

test('100,000 entries: one sweep per tick handles them cheaply', () => {
  const w = wheel(0, 4096);
  const conns: Conn[] = [];
  for (let i = 0; i < 100_000; i++) {
    const c = new Conn(1000 + (i % 60) * 1000);
    conns.push(c);
    w.schedule(c, c.deadline);
  }
  assert.equal(w.size, 100_000);
  for (let t = 0; t <= 61_000; t += 100) w.advance(t);
  assert.equal(w.size, 0);
  assert.ok(conns.every((c) => c.fired.length === 1));
});
