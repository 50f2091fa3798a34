import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHttpGatewayMock, type HttpGatewayMock } from '../mocks/sms/http-gateway.js';
import { startTwilioMock, type TwilioMock } from '../mocks/sms/twilio.js';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

type App = Awaited<ReturnType<typeof newApp>>;

async function done(app: App, id: string) {
  return eventually(async () => {
    const m = await app.api('GET', `/v1/messages/${id}`);
    return m.body.state === 'done' ? m.body : undefined;
  }, 30_000, `message ${id} done`);
}

async function deliveries(app: App, id: string): Promise<Record<string, { status: string; error: { code: string } | null; providerId: string | null }>> {
  const page = await app.api('GET', `/v1/messages/${id}/deliveries?limit=1000`);
  return Object.fromEntries(page.body.items.map((d: { deviceId: string }) => [d.deviceId, d]));
}

/** The cap for every app of this Relay: the cap test's app sends more, the others fewer. */
const CAP = 6;

describe('the sms channel: generic HTTP and Twilio drivers, the SMS top-up and the daily cap, through the REST API', () => {
  let t: TestRelay;
  let twilio: TwilioMock;
  let gateway: HttpGatewayMock;

  const twilioCred = () => ({ driver: 'twilio', accountSid: twilio.accountSid, authToken: twilio.authToken, from: '+15005550006' });
  const twilioApp = async () => {
    const app = await newApp(t);
    const r = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, twilioCred());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return app;
  };
  const device = async (app: App, id: string, tokens: Record<string, string> = {}) => {
    const r = await app.api('PUT', `/v1/devices/${id}`, { platform: 'android', tokens });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  const sentTo = (numbers: string[]) => twilio.messages.filter((m) => numbers.includes(m.to));

  before(async () => {
    [twilio, gateway] = await Promise.all([
      startTwilioMock(),
      startHttpGatewayMock({ method: 'POST', path: '/v1/sms/send', headers: { authorization: 'Bearer gw-key-123' }, contentType: 'json', required: ['phone', 'content'] }, 'phone'),
    ]);
    t = await startTestRelay({ TWILIO_ENDPOINT: twilio.url, SMS_DAILY_CAP: String(CAP), SMS_HTTP_TRUSTED_URL: 'https://127.0.0.1' });
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
    await Promise.all([twilio?.close(), gateway?.close()]);
  });

  test('an sms token is an E.164 number, and a bad credential is a 400 naming its field', async () => {
    const app = await newApp(t);
    const bad = await app.api('PUT', '/v1/devices/d-bad', { platform: 'android', tokens: { sms: '13800138000' } });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body.error), /body\.tokens\.sms/);
    const raw = await app.api('POST', '/v1/push', { to: { token: { channel: 'sms', value: '0800 123' } }, notification: { body: 'x' } });
    assert.equal(raw.status, 400);
    assert.match(JSON.stringify(raw.body.error), /body\.to\.token\.value/);

    const sid = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, { ...twilioCred(), accountSid: 'AC123' });
    assert.equal(sid.status, 400);
    assert.match(JSON.stringify(sid.body.error), /body\.accountSid/);
    const both = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, { ...twilioCred(), messagingServiceSid: `MG${'0'.repeat(32)}` });
    assert.equal(both.status, 400);
    assert.match(JSON.stringify(both.body.error), /body\.from/);
    const placeholder = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, { driver: 'http', url: `${gateway.url}/v1/sms/send`, body: { phone: '{{to}}', content: '{{txt}}' } });
    assert.equal(placeholder.status, 400);
    assert.match(JSON.stringify(placeholder.body.error), /body\.body\.content/);
    const driver = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, { driver: 'carrier-pigeon' });
    assert.equal(driver.status, 400);
    assert.match(JSON.stringify(driver.body.error), /body\.driver/);

    const ok = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, twilioCred());
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.info.driver, 'twilio');
    assert.ok(!JSON.stringify(ok.body).includes(twilio.authToken), 'the auth token is never shown');
    assert.ok(ok.body.receiptUrl, 'the status callback URL is shown');

    // Normal routing never picks SMS: a device with only an sms token has no push channel.
    await device(app, 'd-sms-only', { sms: '+14155550199' });
    const push = await app.api('POST', '/v1/push', { to: { devices: ['d-sms-only'] }, notification: { body: 'hi' } });
    await done(app, push.body.id);
    assert.equal((await deliveries(app, push.body.id))['d-sms-only']!.error?.code, 'NoActiveToken');
    assert.equal(sentTo(['+14155550199']).length, 0);
  });

  test('generic HTTP driver: the template is rendered (URL, headers, JSON body) and the gateway’s codes classified', async () => {
    const app = await newApp(t);
    const cred = {
      driver: 'http',
      url: `${gateway.url}/v1/sms/send?ref={{messageId}}`,
      headers: { Authorization: 'Bearer gw-key-123', 'X-Relay-Message': '{{messageId}}' },
      body: { phone: '{{to}}', content: '[Shop] {{text}}', meta: { id: '{{messageId}}', tags: ['otp'] } },
      idPath: 'data.id',
      errorCodePath: 'code',
      invalidCodes: [1001],
    };
    const put = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, cred);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.ok(!JSON.stringify(put.body).includes('gw-key-123'), 'header values are not shown');
    await device(app, 'g-ok', { sms: '+8613800000001' });
    await device(app, 'g-dead', { sms: '+8613800000002' });
    gateway.fates.set('+8613800000002', { status: 400, code: 1001 });

    const push = await app.api('POST', '/v1/push', {
      to: { devices: ['g-ok', 'g-dead'] },
      notification: { title: 'ignored', body: 'ignored' },
      options: { channels: ['sms'] },
      overrides: { sms: { text: 'Code 7731, "valid" 5 min' } },
    });
    assert.equal(push.status, 202, JSON.stringify(push.body));
    const msg = await done(app, push.body.id);
    assert.deepEqual(msg.byChannel, { sms: { sent: 1, invalid: 1 } });

    const ok = gateway.requests.find((r) => r.fields.phone === '+8613800000001' && r.status === 200)!;
    assert.ok(ok, 'the gateway got the number');
    assert.equal(ok.fields.content, '[Shop] Code 7731, "valid" 5 min', 'placeholders filled, JSON escaped');
    assert.deepEqual(ok.fields.meta, { id: push.body.id, tags: ['otp'] });
    assert.equal(ok.headers['x-relay-message'], push.body.id);
    assert.equal(new URL(ok.url, 'https://x').searchParams.get('ref'), push.body.id);
    assert.match(String(ok.headers['content-type']), /^application\/json/);

    const fates = await deliveries(app, push.body.id);
    assert.equal(fates['g-ok']!.status, 'sent');
    assert.equal(fates['g-ok']!.providerId, 'gw-1');
    assert.equal(fates['g-dead']!.status, 'invalid');
    assert.equal(fates['g-dead']!.error?.code, '1001');
    const dead = await app.api('GET', '/v1/devices/g-dead');
    assert.equal(dead.body.tokens.find((x: { channel: string }) => x.channel === 'sms').state, 'invalid', 'a dead number is quarantined');

    // A form-encoded gateway: same driver, bodyType form (the mock refuses JSON with 415).
    const form = await startHttpGatewayMock({ method: 'POST', path: '/send', headers: { 'x-api-key': 'k2' }, contentType: 'form', required: ['mobile', 'msg'] }, 'mobile');
    try {
      const app2 = await newApp(t);
      const r = await app2.api('PUT', `/v1/apps/${app2.appId}/credentials/sms`, { driver: 'http', url: `${form.url}/send`, headers: { 'x-api-key': 'k2' }, bodyType: 'form', body: { mobile: '{{to}}', msg: '{{text}}', sender: 'SHOP' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const p = await app2.api('POST', '/v1/push', { to: { token: { channel: 'sms', value: '+447700900123' } }, notification: { title: 'Order 42', body: 'shipped' }, options: { channels: ['sms'] } });
      await done(app2, p.body.id);
      assert.deepEqual(form.accepted, [{ to: '+447700900123', fields: { mobile: '+447700900123', msg: 'Order 42: shipped', sender: 'SHOP' } }]);
    } finally {
      await form.close();
    }
  });

  test('Twilio driver: the strict mock gets Basic auth and form fields; 21211 quarantines the number; a signed status callback marks it delivered', async () => {
    const app = await twilioApp();
    await device(app, 't-ok', { sms: '+14155550101' });
    await device(app, 't-bad', { sms: '+15005550001' });
    const push = await app.api('POST', '/v1/push', { to: { devices: ['t-ok', 't-bad'] }, notification: { title: 'Code', body: '123456' }, options: { channels: ['sms'] } });
    const msg = await done(app, push.body.id);
    assert.deepEqual(msg.byChannel, { sms: { sent: 1, invalid: 1 } });
    const [sms] = sentTo(['+14155550101']);
    assert.ok(sms);
    assert.equal(sms.body, 'Code: 123456');
    assert.equal(sms.from, '+15005550006');
    const fates = await deliveries(app, push.body.id);
    assert.equal(fates['t-ok']!.providerId, sms.sid);
    assert.equal(fates['t-bad']!.status, 'invalid');
    assert.equal(fates['t-bad']!.error?.code, '21211');
    const bad = await app.api('GET', '/v1/devices/t-bad');
    assert.equal(bad.body.tokens[0].state, 'invalid');
    assert.equal(bad.body.tokens[0].reason, '21211');

    // Twilio posts the status to the StatusCallback Relay sent: the app's receipt URL, signed.
    assert.ok(sms.statusCallback?.includes(`/v1/receipts/sms/${app.appId}?secret=`));
    const cb = twilio.statusCallback(sms.sid, 'delivered');
    const url = new URL(cb.url);
    const post = (signature: string) =>
      fetch(`${t.base}${url.pathname}${url.search}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature }, body: cb.body });
    assert.equal((await post('forged')).status, 401, 'an unsigned or forged callback is refused');
    const r = await post(cb.signature);
    assert.equal(r.status, 200, await r.clone().text());
    assert.deepEqual(await r.json(), { received: 1, matched: 1, applied: 1 });
    assert.equal((await deliveries(app, push.body.id))['t-ok']!.status, 'delivered');
  });

  test('SMS top-up: after the window, one SMS to each device the push did not reach; none to delivered or opened ones; once', async () => {
    const app = await twilioApp();
    const numbers = { f1: '+14155550201', f2: '+14155550202', f3: '+14155550203', f4: '+14155550204' };
    for (const [id, sms] of Object.entries(numbers)) await device(app, id, { sms });
    await device(app, 'f5'); // no phone number: no SMS
    // The push goes over the self channel (devices offline: held for them, `sent`); the window is
    // long, and the test moves the top-up's job forward itself once the device events are in.
    const push = await app.api('POST', '/v1/push', {
      to: { devices: ['f1', 'f2', 'f3', 'f4', 'f5'] },
      notification: { title: 'Your order', body: 'is ready' },
      options: { channels: ['self'], fallback: { sms: { after: '10m', text: 'Your order is ready: open the app' } } },
    });
    assert.equal(push.status, 202, JSON.stringify(push.body));
    const id = push.body.id as string;
    await done(app, id);
    assert.equal((await app.api('POST', '/v1/events', { messageId: id, deviceId: 'f1', event: 'delivered' })).status, 200);
    assert.equal((await app.api('POST', '/v1/events', { messageId: id, deviceId: 'f2', event: 'opened' })).status, 200);
    assert.equal(sentTo(Object.values(numbers)).length, 0, 'nothing before the window ends');

    const job = await t.relay.ctx.queues.smsFallback.getJob(`smsfb.${id}`);
    assert.ok(job && (await job.isDelayed()), 'the top-up waits in a delayed job');
    await job.promote();
    const linked = await eventually(async () => {
      const m = await app.api('GET', `/v1/messages/${id}-sms`);
      return m.status === 200 && m.body.state === 'done' && m.body.recipients === 2 ? m.body : undefined;
    }, 30_000, 'the top-up message done');
    assert.deepEqual(linked.byChannel, { sms: { sent: 2 } });
    assert.equal(linked.fallbackOf, id);
    assert.deepEqual((await app.api('GET', `/v1/messages/${id}`)).body.fallback, { sms: { after: '10m', messageId: `${id}-sms` } });
    assert.deepEqual(sentTo(Object.values(numbers)).map((m) => m.to).sort(), [numbers.f3, numbers.f4]);
    assert.ok(sentTo(Object.values(numbers)).every((m) => m.body === 'Your order is ready: open the app'));
    const fates = await deliveries(app, `${id}-sms`);
    assert.deepEqual(Object.keys(fates).sort(), ['f3', 'f4']);

    // A second run (a re-delivered job, a restart) sends nothing again.
    await t.relay.ctx.queues.smsFallback.add('fallback', { appId: app.appId, messageId: id }, { jobId: `again.${id}` });
    await eventually(async () => ((await t.relay.ctx.queues.smsFallback.getJob(`again.${id}`))?.finishedOn ? true : undefined), 30_000, 'the re-run finished');
    assert.equal((await app.api('GET', `/v1/messages/${id}-sms`)).body.recipients, 2);
    assert.equal(sentTo(Object.values(numbers)).length, 2, 'once per device');

    // The SMS count in the stats: deliveries on channel sms.
    const stats = await app.api('GET', '/v1/stats?channel=sms');
    assert.equal(stats.status, 200, JSON.stringify(stats.body));
    const sent = stats.body.series.flatMap((s: { points: { sent: number }[] }) => s.points).reduce((n: number, p: { sent: number }) => n + p.sent, 0);
    assert.equal(sent, 2);
  });

  test('a recalled push gets no SMS top-up: its job is removed, and a run that slips through sends nothing', async () => {
    const app = await twilioApp();
    await device(app, 'r1', { sms: '+14155550301' });
    const push = await app.api('POST', '/v1/push', {
      to: { devices: ['r1'] },
      notification: { title: 'Flash sale' },
      options: { channels: ['self'], fallback: { sms: { after: '10m', text: 'Flash sale: 50% off' } } },
    });
    assert.equal(push.status, 202, JSON.stringify(push.body));
    const id = push.body.id as string;
    await done(app, id);
    assert.ok(await t.relay.ctx.queues.smsFallback.getJob(`smsfb.${id}`), 'the top-up is waiting');
    assert.equal((await app.api('DELETE', `/v1/messages/${id}`)).status, 200);
    assert.equal(await t.relay.ctx.queues.smsFallback.getJob(`smsfb.${id}`), undefined, 'the recall removed the top-up');
    // A top-up job that escaped the removal (it was running, or queued again) finds the recall.
    await t.relay.ctx.queues.smsFallback.add('fallback', { appId: app.appId, messageId: id }, { jobId: `late.${id}` });
    await eventually(async () => ((await t.relay.ctx.queues.smsFallback.getJob(`late.${id}`))?.finishedOn ? true : undefined), 30_000, 'the late run finished');
    assert.equal((await app.api('GET', `/v1/messages/${id}-sms`)).status, 404, 'no top-up message');
    assert.equal(sentTo(['+14155550301']).length, 0, 'no SMS for a recalled push');
  });

  test('SMS_DAILY_CAP: past the app’s cap for the day, an SMS fails with SmsDailyCap and the gateway never sees it', async () => {
    const app = await twilioApp();
    const ids = Array.from({ length: CAP + 2 }, (_, i) => `c${i}`);
    const numbers = ids.map((_, i) => `+1415555030${i}`);
    for (const [i, id] of ids.entries()) await device(app, id, { sms: numbers[i]! });
    const push = await app.api('POST', '/v1/push', { to: { devices: ids }, notification: { body: 'flash sale' }, options: { channels: ['sms'] } });
    const msg = await done(app, push.body.id);
    assert.deepEqual(msg.byChannel, { sms: { sent: CAP, failed: 2 } });
    assert.equal(sentTo(numbers).length, CAP);
    const capped = Object.values(await deliveries(app, push.body.id)).filter((d) => d.status === 'failed');
    assert.deepEqual(capped.map((d) => d.error?.code), ['SmsDailyCap', 'SmsDailyCap']);
    const errors = await app.api('GET', '/v1/stats/errors?channel=sms');
    const reasons = errors.body.channels[0].reasons.map((x: { code: string; status: string; count: number }) => `${x.status}:${x.code}:${x.count}`);
    assert.deepEqual(reasons, ['failed:SmsDailyCap:2']);

    // An app may hold itself to less (its smsDailyCap setting), never to more than the operator's cap.
    const small = await twilioApp();
    assert.equal((await small.api('PUT', `/v1/apps/${small.appId}/settings`, { smsDailyCap: 1 })).status, 200);
    const mine = ['+14155550401', '+14155550402'];
    for (const [i, n] of mine.entries()) await device(small, `s${i}`, { sms: n });
    const p = await small.api('POST', '/v1/push', { to: { devices: ['s0', 's1'] }, notification: { body: 'hi' }, options: { channels: ['sms'] } });
    assert.deepEqual((await done(small, p.body.id)).byChannel, { sms: { sent: 1, failed: 1 } });
    assert.equal(sentTo(mine).length, 1);
    assert.equal((await small.api('PUT', `/v1/apps/${small.appId}/settings`, { smsDailyCap: 0 })).status, 400);
  });
});

describe('the SMS top-up survives a restart: its delayed job waits in Redis, not in the process', () => {
  test('a Relay stopped after the push and started again sends the top-up when it falls due', async () => {
    const twilio = await startTwilioMock();
    const env = { TWILIO_ENDPOINT: twilio.url };
    let t = await startTestRelay(env);
    try {
      const app = await newApp(t);
      const put = await app.api('PUT', `/v1/apps/${app.appId}/credentials/sms`, { driver: 'twilio', accountSid: twilio.accountSid, authToken: twilio.authToken, from: '+15005550006' });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.equal((await app.api('PUT', '/v1/devices/r1', { platform: 'android', tokens: { sms: '+14155550501' } })).status, 200);
      const push = await app.api('POST', '/v1/push', {
        to: { devices: ['r1'] },
        notification: { body: 'restart' },
        options: { channels: ['self'], fallback: { sms: { after: '10m', text: 'after the restart' } } },
      });
      const id = push.body.id as string;
      await done(app, id);

      await t.stop();
      t = await startTestRelay(env, t.iso);
      const job = await t.relay.ctx.queues.smsFallback.getJob(`smsfb.${id}`);
      assert.ok(job && (await job.isDelayed()), 'the job outlived the process');
      await job.promote();
      await eventually(async () => (twilio.messages.some((m) => m.to === '+14155550501') ? true : undefined), 30_000, 'the top-up SMS');
      assert.deepEqual(twilio.messages.map((m) => [m.to, m.body]), [['+14155550501', 'after the restart']]);
    } finally {
      await t.stop();
      await t.iso.drop();
      await twilio.close();
    }
  });
});
