import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startXiaomiMock, type XiaomiMock } from '../mocks/vendors/xiaomi.js';

/**
 * A recall spends the vendor's quota like a send: its revoke requests go through the same
 * per-credential budget (src/rate-limiter.ts), so withdrawing a large audience cannot exceed the
 * QPS configured on the credential. Counted on the mock's own receive times.
 */
const QPS = 5;
const DEVICES = 25;

let t: TestRelay;
let xiaomi: XiaomiMock;

before(async () => {
  xiaomi = await startXiaomiMock();
  t = await startTestRelay({ XIAOMI_ENDPOINT: xiaomi.url });
});
after(async () => {
  await t?.stop();
  await t?.iso.drop();
  await xiaomi?.close();
});

test(`a recall of ${DEVICES} Xiaomi devices keeps to the credential's qps of ${QPS}`, async () => {
  const { appId, api } = await newApp(t);
  const cred = await api('PUT', `/v1/apps/${appId}/credentials/xiaomi`, { appSecret: xiaomi.appSecret, packageName: xiaomi.packageName, qps: QPS });
  assert.equal(cred.status, 200, JSON.stringify(cred.body));
  const ids = Array.from({ length: DEVICES }, (_, i) => `rr-${i}`);
  for (const id of ids) assert.equal((await api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'xiaomi', tokens: { xiaomi: `xm-rate-${id}` } })).status, 200);
  const push = await api('POST', '/v1/push', { to: { devices: ids }, notification: { title: 'Sale', body: 'now' } });
  assert.equal(push.status, 202, JSON.stringify(push.body));
  const id = push.body.id as string;
  await eventually(async () => ((await api('GET', `/v1/messages/${id}`)).body.counts?.sent === DEVICES ? true : undefined), 60_000, 'every device sent');

  assert.equal((await api('DELETE', `/v1/messages/${id}`)).status < 300, true);
  const report = await eventually(async () => {
    const r = await api('GET', `/v1/messages/${id}/recall?limit=1000`);
    return r.body.state === 'done' ? r.body : undefined;
  }, 60_000, 'the recall done');
  assert.equal(report.items.filter((i: { state: string }) => i.state === 'withdrawn').length, DEVICES);

  const revokes = xiaomi.revokes.filter((r) => r.regIds.some((x) => x.startsWith('xm-rate-')));
  assert.equal(revokes.flatMap((r) => r.regIds).length, DEVICES, 'each device revoked once');
  assert.ok(revokes.every((r) => r.regIds.length <= QPS), `no revoke names more than ${QPS} tokens: ${revokes.map((r) => r.regIds.length)}`);
  // The budget's windows are fixed one-second windows the mock cannot see: any second it observes
  // spans at most two of them.
  const times = revokes.map((r) => r.at!).sort((a, b) => a - b);
  for (const start of times) {
    const inWindow = revokes.filter((r) => r.at! >= start && r.at! < start + 1000).reduce((n, r) => n + r.regIds.length, 0);
    assert.ok(inWindow <= 2 * QPS, `${inWindow} tokens revoked within one second of ${start}`);
  }
});
