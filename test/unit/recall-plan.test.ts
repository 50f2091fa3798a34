import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildApnsRequest } from '../../providers/apns/index.js';
import { notifyIdFrom } from '../../providers/shared/ids.js';
import { buildXiaomiForm, buildXiaomiRevokeForm } from '../../providers/xiaomi.js';
import type { PushRequest } from '../../src/core/push-request.js';
import { pushRequestSchema } from '../../src/push-request.js';
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

  it('the Xiaomi revoke names the notify_id the message went out with (collapse key, message id, or a raw field)', () => {
    const base = { messageId: 'msg_x', notification: { title: 't', body: 'b' }, expiresAt: Date.now() + 60_000 };
    const cases = [
      { options: { ttl: 60, priority: 'high' as const, collapseKey: 'k1' } },
      { options: { ttl: 60, priority: 'high' as const } },
      { options: { ttl: 60, priority: 'high' as const }, overrides: { xiaomi: { fields: { notify_id: '77' } } } },
    ];
    const expected = [notifyIdFrom('k1'), notifyIdFrom('msg_x'), 77];
    cases.forEach((c, i) => {
      const content = { ...base, ...c };
      const sent = buildXiaomiForm(content, ['r1'], { packageName: 'com.example.app' })!;
      const revoke = buildXiaomiRevokeForm(content, ['r1', 'r2'], 'com.example.app');
      assert.equal(revoke.get('notify_id'), sent.get('notify_id'));
      assert.equal(Number(revoke.get('notify_id')), expected[i]);
      assert.deepEqual([...revoke.keys()].sort(), ['notify_id', 'registration_ids', 'restricted_package_name']);
      assert.equal(revoke.get('registration_ids'), 'r1,r2');
    });
  });
});
