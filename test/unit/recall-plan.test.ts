import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildApnsRequest } from '../../providers/apns.js';
import { pushRequestSchema, type PushRequest } from '../../src/core/push-request.js';
import { planRecall, replacementContent } from '../../src/core/recall.js';

const req = (body: Record<string, unknown>): PushRequest => pushRequestSchema.parse({ to: { devices: ['d'] }, ...body });
const none = () => false;
const notice = { title: 'Withdrawn', body: 'This message was withdrawn.' };

describe('recall planning (src/core/recall.ts)', () => {
  const plain = req({ notification: { title: 't', body: 'b' } });
  const keyed = req({ notification: { title: 't', body: 'b' }, options: { collapseKey: 'k1' } });

  it('self copies get a revoke whatever their status; never-sent deliveries are cancelled', () => {
    for (const status of ['sent', 'delivered', 'opened', 'cancelled', 'expired']) {
      assert.deepEqual(planRecall({ channel: 'self', status, seq: '3' }, plain, none), { kind: 'revoke' });
    }
    assert.deepEqual(planRecall({ channel: 'fcm', status: 'cancelled', seq: null }, plain, none), { kind: 'final', state: 'cancelled', reason: null });
    const failed = planRecall({ channel: 'apns', status: 'failed', seq: null }, plain, none);
    assert.equal(failed.kind === 'final' && failed.state, 'cancelled');
    assert.equal(failed.kind === 'final' && failed.reason?.code, 'not_delivered');
  });

  it('a provider with a recall API is asked; otherwise replacement where the original can be overwritten', () => {
    assert.deepEqual(planRecall({ channel: 'xiaomi', status: 'sent', seq: null }, plain, (c) => c === 'xiaomi'), { kind: 'provider' });
    assert.deepEqual(planRecall({ channel: 'apns', status: 'delivered', seq: null }, keyed, none), { kind: 'replace' });
    assert.deepEqual(planRecall({ channel: 'meizu', status: 'sent', seq: null }, keyed, none), { kind: 'replace' });
    const vivo = planRecall({ channel: 'vivo', status: 'sent', seq: null }, keyed, none);
    assert.equal(vivo.kind === 'final' && vivo.reason?.code, 'no_recall_api', 'vivo shows a replacement beside the original');
    const apns = planRecall({ channel: 'apns', status: 'sent', seq: null }, plain, none);
    assert.equal(apns.kind === 'final' && apns.reason?.code, 'no_collapse_id');
    const honor = planRecall({ channel: 'honor', status: 'sent', seq: null }, plain, none);
    assert.equal(honor.kind === 'final' && honor.reason?.code, 'no_collapse_key');
    // FCM: a notification needs its tag; a data-only original was shown by the app (the SDK removes it).
    assert.equal(planRecall({ channel: 'fcm', status: 'sent', seq: null }, keyed, none).kind, 'final');
    assert.equal(planRecall({ channel: 'fcm', status: 'sent', seq: null }, req({ data: { a: 1 } }), none).kind, 'replace');
    const tagged = req({ notification: { title: 't' }, overrides: { fcm: { android: { notification: { tag: 'x' } } } } });
    assert.equal(planRecall({ channel: 'fcm', status: 'sent', seq: null }, tagged, none).kind, 'replace');
    const web = req({ notification: { title: 't' }, overrides: { webpush: { notification: { tag: 'w' } } } });
    assert.equal(planRecall({ channel: 'webpush', status: 'sent', seq: null }, web, none).kind, 'replace');
    assert.equal(planRecall({ channel: 'webpush', status: 'sent', seq: null }, plain, none).kind, 'final');
  });

  it('the APNs replacement carries the collapse id (the override wins) and relay_type revoke under the original id', () => {
    const r = req({ notification: { title: 't' }, options: { collapseKey: 'k1' }, overrides: { apns: { collapseId: 'c9' } } });
    const content = replacementContent('msg_1', 'apns', r, notice, 1_000_000);
    const built = buildApnsRequest(content, 'com.example.app', 1_000_000);
    assert.ok(built.ok, JSON.stringify(built));
    if (!built.ok) return;
    assert.equal(built.request.collapseId, 'c9');
    assert.equal(built.request.payload.relay_id, 'msg_1');
    assert.equal(built.request.payload.relay_type, 'revoke');
    assert.deepEqual((built.request.payload.aps as { alert: unknown }).alert, { title: notice.title, body: notice.body });
  });
});
