import assert from 'node:assert/strict';
import { test } from 'node:test';
import { safeEqual } from '../../src/core/secrets.js';

test('safeEqual: equal only for the same string, whatever the lengths', () => {
  assert.equal(safeEqual('receipt-secret', 'receipt-secret'), true);
  assert.equal(safeEqual('receipt-secret', 'receipt-secreT'), false);
  assert.equal(safeEqual('receipt-secret', 'receipt'), false, 'a prefix is not equal (and does not throw on unequal lengths)');
  assert.equal(safeEqual('', 'x'), false);
  assert.equal(safeEqual('', ''), true);
});
