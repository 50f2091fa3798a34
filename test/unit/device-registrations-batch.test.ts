import assert from 'node:assert/strict';
import { test } from 'node:test';
import { previewSchema } from '../../bench/preview-schema.js';
import { takeBatch } from '../../src/core/registration-batch.js';
import { isDataError } from '../../src/db/pg-errors.js';

const key = (s: string) => s.split('#')[0]!;

test('a device repeated in a loop gets a few rounds per batch; the rest waits, in order', () => {
  // Device x registered 500 times, then y once: the batch takes x three times and y.
  const waiting = [...Array.from({ length: 500 }, (_, i) => `x#${i}`), 'y#0'];
  const { batch, rest } = takeBatch(waiting, key, new Set(), 500, 3);
  assert.deepEqual(batch, ['x#0', 'x#1', 'x#2', 'y#0']);
  assert.equal(rest.length, 497);
  assert.deepEqual(rest.slice(0, 2), ['x#3', 'x#4'], 'what waits keeps its arrival order');
  assert.equal(rest.at(-1), 'x#499');
});

test('a device being written by another batch waits for it; the batch size is capped', () => {
  const { batch, rest } = takeBatch(['a#0', 'b#0', 'a#1', 'c#0', 'd#0'], key, new Set(['a']), 2, 3);
  assert.deepEqual(batch, ['b#0', 'c#0']);
  assert.deepEqual(rest, ['a#0', 'a#1', 'd#0']);
  assert.deepEqual(takeBatch(['a#0'], key, new Set(['a']), 500, 3), { batch: [], rest: ['a#0'] });
});

test('only errors about the rows are data errors (SQLSTATE classes 22 and 23)', () => {
  for (const code of ['23503', '23505', '22P05', '22001']) assert.equal(isDataError({ code }), true, code);
  for (const code of ['57014', '08006', '53300', '40P01', 'ECONNRESET', undefined]) assert.equal(isDataError({ code }), false, String(code));
  assert.equal(isDataError(new Error('Connection terminated')), false);
  assert.equal(isDataError(null), false);
});

test('bench:preview works only in a schema of its own kind', () => {
  assert.equal(previewSchema({}, 'ab12'), 'relay_pv_ab12');
  assert.equal(previewSchema({ reuse: 'relay_pv_big' }, 'x'), 'relay_pv_big');
  assert.equal(previewSchema({ keep: 'relay_pv_1m' }, 'x'), 'relay_pv_1m');
  for (const values of [{ reuse: 'public' }, { keep: 'public' }, { reuse: 'relay_pv_x; DROP TABLE apps' }, { reuse: 'relay_pv_' }, { keep: 'x_relay_pv_a' }]) {
    assert.throws(() => previewSchema(values, 'x'), /--keep\/--reuse must name a schema this bench creates/, JSON.stringify(values));
  }
});
