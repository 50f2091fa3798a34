import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromOutbox, toOutbox, type Enqueue } from '../../workers/campaign-scheduler.js';

test('outbox: a page’s send jobs round-trip, in order, as runs of consecutive ids', () => {
  const page: Enqueue = {
    messageId: 'msg_1',
    leasedUntil: 1_700_000_000_000,
    leased: new Map([
      ['apns', ['9007199254740993', '9007199254740994', '9007199254740995', '12', '13', '40']],
      ['fcm', ['7']],
    ]),
    pending: new Map([['self', ['100', '101']]]),
  };
  const box = toOutbox(page);
  assert.deepEqual(box.leased[0], ['apns', [['9007199254740993', 3], ['12', 2], ['40', 1]]], 'ids beyond 2^53 kept exact');
  // What the database stores and gives back: JSON.
  assert.deepEqual(fromOutbox(JSON.parse(JSON.stringify(box))), page);
  assert.deepEqual(fromOutbox(toOutbox({ ...page, leased: new Map(), pending: new Map() })), { ...page, leased: new Map(), pending: new Map() });
});
