import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

let t: TestRelay;
let worker: TestRelay | undefined;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;

before(async () => {
  mocks = await startProviderMocks();
  // The API and the scheduler, no send worker yet: what the scheduler dispatches stays in the
  // send queues until the test starts one.
  t = await startTestRelay({ ...mocks.env, ROLES: 'api,scheduler', CAMPAIGN_TICK: '50ms', CAMPAIGN_LEASE: '3s' });
});
after(async () => {
  await worker?.stop();
  await t?.stop();
  await t?.iso.drop();
  await mocks?.close();
});

test('send jobs already queued: a paused campaign’s deliveries wait and go after resume; a cancelled one’s end cancelled', { timeout: 300_000 }, async () => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/fcm`, mocks.credentials.fcm)).status, 200);
  for (let i = 0; i < 40; i++) await api('PUT', `/v1/devices/p-${i}`, { platform: 'android', brand: 'samsung', tokens: { fcm: `fcm-p-${i}` }, tags: ['p'] });
  for (let i = 0; i < 20; i++) await api('PUT', `/v1/devices/c-${i}`, { platform: 'android', brand: 'samsung', tokens: { fcm: `fcm-c-${i}` }, tags: ['c'] });
  const get = async (id: string) => (await api('GET', `/v1/campaigns/${id}`)).body;
  const until = <T>(id: string, pred: (c: any) => T | undefined, what: string) => eventually(async () => pred(await get(id)), 60_000, `${id}: ${what}`);
  const sends = (prefix: string) => mocks.fcm.requests.filter((r) => r.token?.startsWith(prefix) && r.status === 200);

  // P: paused mid-dispatch (a throttle keeps it running), with send jobs for what it dispatched.
  const p = await api('POST', '/v1/campaigns', { name: 'P', audience: { tags: { all: ['p'] } }, notification: { title: 'P' }, throttle: { perMinute: 600 } });
  assert.equal(p.status, 201, JSON.stringify(p.body));
  await until(p.body.id, (c) => (c.dispatched >= 10 ? c : undefined), 'P dispatching');
  assert.equal((await api('POST', `/v1/campaigns/${p.body.id}/pause`)).body.state, 'paused');
  // C: dispatched in full (its deliveries all queued in the send queues), then paused.
  const c = await api('POST', '/v1/campaigns', { name: 'C', audience: { tags: { all: ['c'] } }, notification: { title: 'C' } });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  await until(c.body.id, (x) => (x.state === 'completed' && x.counts.queued === 20 ? x : undefined), 'C dispatched');
  const pausedC = await api('POST', `/v1/campaigns/${c.body.id}/pause`);
  assert.equal(pausedC.status, 200, JSON.stringify(pausedC.body));
  assert.equal(pausedC.body.state, 'paused', 'a dispatched campaign with sends still queued can be paused');
  const atPause = (await get(p.body.id)).dispatched as number;
  assert.ok(atPause >= 10 && atPause < 40, `P dispatched ${atPause}`);

  // A send worker starts: it takes every queued job and puts each back to wait (delayed),
  // sending nothing.
  worker = await startTestRelay({ ...mocks.env, ROLES: 'worker' }, t.iso);
  const fcm = t.relay.ctx.queues.send('fcm');
  await eventually(async () => {
    const [waiting, active, delayed] = await Promise.all([fcm.getJobCountByTypes('wait', 'prioritized'), fcm.getActiveCount(), fcm.getDelayedCount()]);
    return waiting === 0 && active === 0 && delayed >= 2 ? true : undefined;
  }, 60_000, 'the worker holds every campaign job back');
  await new Promise((r) => setTimeout(r, 1500)); // a few of the worker's re-checks
  assert.equal(sends('fcm-p-').length, 0, 'nothing of P sent while paused');
  assert.equal(sends('fcm-c-').length, 0, 'nothing of C sent while paused');
  const pNow = await get(p.body.id);
  assert.equal(pNow.dispatched, atPause, 'nothing dispatched while paused');
  assert.equal(pNow.counts.queued, atPause);

  // Cancel C while its jobs wait: every delivery ends cancelled, none is sent.
  assert.equal((await api('POST', `/v1/campaigns/${c.body.id}/cancel`)).body.state, 'cancelled');
  const cDone = await until(c.body.id, (x) => (x.counts.cancelled === 20 && x.counts.queued === 0 ? x : undefined), 'C cancelled');
  assert.equal(cDone.counts.sent, 0);

  // Resume P: what waited in the queues goes, the rest is dispatched, each device once.
  assert.equal((await api('POST', `/v1/campaigns/${p.body.id}/resume`)).body.state, 'running');
  const pDone = await until(p.body.id, (x) => (x.state === 'completed' && x.counts.sent === 40 ? x : undefined), 'P sent after resume');
  assert.equal(pDone.dispatched, 40);
  assert.equal(sends('fcm-p-').length, 40);
  assert.equal(new Set(sends('fcm-p-').map((r) => r.token)).size, 40);
  assert.equal(sends('fcm-c-').length, 0);
  // Nothing left to pause or cancel: a completed campaign says so.
  assert.equal((await api('POST', `/v1/campaigns/${p.body.id}/cancel`)).status, 409);
});
