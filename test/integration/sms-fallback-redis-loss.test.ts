import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTwilioMock, type TwilioMock } from '../mocks/sms/twilio.js';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startOwnRedis, type OwnRedis } from '../helpers/redis-server.js';

/**
 * An SMS top-up waits in a delayed BullMQ job until its window ends. Redis here runs without
 * persistence: when it comes back empty, the sweeper's reconciliation must give every pending
 * top-up its job back from PostgreSQL, and must not run one that already ran.
 */
let t: TestRelay;
/** The worker role, in a Relay of its own: stopped before each loss, started after it. */
let w: TestRelay | undefined;
let redis: OwnRedis;
let twilio: TwilioMock;

before(async () => {
  redis = await startOwnRedis();
  twilio = await startTwilioMock();
  t = await startTestRelay({ ...env(), ROLES: 'api,scheduler' });
  await startWorker();
});
after(async () => {
  await stopWorker();
  await t?.stop();
  await t?.iso.drop();
  await twilio?.close();
  await redis?.stop();
});

const env = () => ({ TWILIO_ENDPOINT: twilio.url, REDIS_URL: redis.url });

async function startWorker(): Promise<void> {
  w = await startTestRelay({ ...env(), ROLES: 'worker' }, t.iso);
}
async function stopWorker(): Promise<void> {
  await w?.stop();
  w = undefined;
}

/** Brings Redis back empty and waits for the sweeper pass that noticed it (the marker is back). */
async function loseRedis(): Promise<void> {
  const { queues } = t.relay.ctx;
  await redis.restartEmpty(200);
  await eventually(async () => ((await queues.connection.get(`${t.config.QUEUE_PREFIX}:epoch`).catch(() => null)) ? true : undefined), 30_000, 'the sweeper to write a new epoch marker');
  await t.relay.sweeper!.idle();
}

test('Redis lost its data before a top-up was due: the job comes back from PostgreSQL and the SMS reaches the undelivered device exactly once', async () => {
  const app = await newApp(t);
  const cred = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, { driver: 'twilio', accountSid: twilio.accountSid, authToken: twilio.authToken, from: '+15005550006' });
  assert.equal(cred.status, 200, JSON.stringify(cred.body));
  const numbers = { away: '+14155550401', seen: '+14155550402' };
  for (const [id, sms] of Object.entries(numbers)) assert.equal((await app.api('PUT', `/v1/devices/${id}`, { platform: 'android', tokens: { sms } })).status, 200);

  // Self channel, devices offline: both copies wait (`sent`); `seen` then reports it delivered.
  const push = await app.api('POST', '/v1/push', {
    to: { devices: ['away', 'seen'] },
    notification: { title: 'Parcel', body: 'at the door' },
    options: { channels: ['self'], fallback: { sms: { after: '1h', text: 'Your parcel is at the door' } } },
  });
  assert.equal(push.status, 202, JSON.stringify(push.body));
  const id = push.body.id as string;
  await eventually(async () => ((await app.api('GET', `/v1/messages/${id}`)).body.state === 'done' ? true : undefined), 30_000, 'the push done');
  assert.equal((await app.api('POST', '/v1/events', { messageId: id, deviceId: 'seen', event: 'delivered' })).status, 200);
  const queues = () => t.relay.ctx.queues;
  assert.ok(await queues().smsFallback.getJob(`smsfb.${id}`), 'the top-up waits in its delayed job');

  // The worker role goes down with Redis (a Relay whose BullMQ workers sat idle through a Redis
  // restart does not always shut down cleanly in a test); the scheduler role (the sweeper) lives
  // through the loss and restores the job, which the worker role finds when it is back.
  await stopWorker();
  await loseRedis();
  await startWorker();
  const job = await eventually(async () => (await queues().smsFallback.getJob(`smsfb.${id}`)) ?? undefined, 30_000, 'the top-up job restored');
  assert.ok(await job.isDelayed(), 'restored still delayed: its window has not ended');
  assert.ok(job.opts.delay! > 50 * 60_000, `due when it was due, not at once (delay ${job.opts.delay})`);
  assert.equal(twilio.messages.length, 0, 'nothing sent before the window ends');

  // The window ends (the test moves the job forward rather than wait an hour).
  await (await t.relay.ctx.queues.smsFallback.getJob(`smsfb.${id}`))!.promote();
  const linked = await eventually(async () => {
    const m = await app.api('GET', `/v1/messages/${id}-sms`);
    // Born routed with no deliveries, it reads `done` until the worker's page is in: wait for both.
    return m.status === 200 && m.body.state === 'done' && m.body.recipients === 1 ? m.body : undefined;
  }, 30_000, 'the top-up message done with one recipient');
  assert.deepEqual(linked.byChannel, { sms: { sent: 1 } });
  assert.deepEqual(twilio.messages.map((m) => m.to), [numbers.away], 'one SMS, to the device the push did not reach');

  // A second loss after the top-up ran: its linked message exists, so nothing is restored or sent.
  await stopWorker();
  await loseRedis();
  await startWorker();
  assert.equal(await queues().smsFallback.getJob(`smsfb.${id}`), undefined, 'a top-up that ran is not restored');
  assert.deepEqual(await t.relay.sweeper!.reconcile(false), { requeued: 0, rerouted: 0 });
  assert.equal(await queues().smsFallback.getJob(`smsfb.${id}`), undefined);
  assert.deepEqual(twilio.messages.map((m) => m.to), [numbers.away], 'still exactly once');
});
