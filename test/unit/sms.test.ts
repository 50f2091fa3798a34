import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { smsText, normaliseSmsToken } from '../../providers/sms/common.js';
import { checkHttpCredential, classifyHttpAnswer, httpSmsCredentialSchema, renderHttpRequest } from '../../providers/sms/http.js';
import { classifyTwilioAnswer, parseTwilioReceipt, twilioSignature, verifyTwilioReceipt, twilioSmsCredentialSchema } from '../../providers/sms/twilio.js';
import { CredentialError } from '../../providers/types.js';
import type { VendorFetchResult } from '../../providers/shared/http.js';
import { fallbackAfterMs } from '../../src/core/push-request.js';
import { pushRequestSchema } from '../../src/push-request.js';

const answer = (status: number, json: unknown, headers: Record<string, string> = {}): VendorFetchResult => ({
  ok: true, status, headers: new Headers(headers), text: JSON.stringify(json), json,
});

describe('sms channel', () => {
  it('takes E.164 numbers only', () => {
    assert.equal(normaliseSmsToken('+8613800138000'), '+8613800138000');
    for (const bad of ['13800138000', '+0123456789', '+1 415 555 0100', '+12', `+1${'2'.repeat(15)}`]) assert.equal(typeof normaliseSmsToken(bad), 'object', bad);
  });

  it('texts overrides.sms.text, else "title: body", cut to 1,600 characters', () => {
    assert.equal(smsText({ notification: { title: 'T', body: 'B' } }), 'T: B');
    assert.equal(smsText({ notification: { body: 'B' } }), 'B');
    assert.equal(smsText({ notification: { title: 'T' }, overrides: { sms: { text: 'own' } } }), 'own');
    assert.equal(smsText({ notification: { body: 'x'.repeat(2000) } })!.length, 1600);
    assert.equal(smsText({}), undefined);
  });

  it('renders the HTTP template: URL percent-encoded, JSON string leaves, form fields, header values', () => {
    const cred = httpSmsCredentialSchema.parse({
      driver: 'http', url: 'https://gw.example/send/{{to}}?m={{messageId}}', headers: { 'X-Id': '{{messageId}}' },
      body: { to: '{{to}}', text: 'Hi {{ text }}!', n: 1, nested: ['{{to}}'] },
    });
    const req = renderHttpRequest(cred, { to: '+8613800138000', text: 'say "a&b"\nok', messageId: 'msg_1' });
    assert.equal(req.url, 'https://gw.example/send/%2B8613800138000?m=msg_1');
    assert.equal(req.headers['X-Id'], 'msg_1');
    assert.deepEqual(JSON.parse(req.body!), { to: '+8613800138000', text: 'Hi say "a&b"\nok!', n: 1, nested: ['+8613800138000'] });
    const form = renderHttpRequest(httpSmsCredentialSchema.parse({ driver: 'http', url: 'https://gw.example', bodyType: 'form', body: { p: '{{to}}', c: '{{text}}' } }), { to: '+1555', text: 'a b&c', messageId: 'm' });
    assert.equal(form.body, 'p=%2B1555&c=a+b%26c');
    assert.match(form.headers['content-type']!, /x-www-form-urlencoded/);
  });

  it('refuses templates it cannot send, naming the field', () => {
    const bad = (over: Record<string, unknown>, path: string) =>
      assert.throws(() => checkHttpCredential(httpSmsCredentialSchema.parse({ driver: 'http', url: 'https://gw.example', body: { to: '{{to}}', text: '{{text}}' }, ...over })), (e: unknown) => e instanceof CredentialError && e.path === path);
    bad({ body: { to: '{{to}}', text: '{{text}}', x: '{{secret}}' } }, 'body.x');
    bad({ headers: { A: '{{nope}}' } }, 'headers.A');
    bad({ body: { to: '{{to}}' } }, 'body');
    bad({ method: 'GET' }, 'bodyType');
    bad({ bodyType: 'form', body: { to: '{{to}}', text: '{{text}}', deep: { a: 1 } } }, 'body.deep');
  });

  it('classifies gateway answers by the credential', () => {
    const cred = httpSmsCredentialSchema.parse({
      driver: 'http', url: 'https://gw.example', body: { to: '{{to}}', t: '{{text}}' }, success: { path: 'code', equals: 0 }, idPath: 'data.id',
      errorCodePath: 'code', invalidCodes: ['E_NUMBER', 404], retryCodes: ['E_BUSY'],
    });
    assert.deepEqual(classifyHttpAnswer(cred, answer(200, { code: 0, data: { id: 77 } })), { kind: 'sent', providerId: '77' });
    assert.equal(classifyHttpAnswer(cred, answer(200, { code: 'E_NUMBER' })).kind, 'invalid');
    assert.equal(classifyHttpAnswer(cred, answer(404, {})).kind, 'invalid');
    assert.equal(classifyHttpAnswer(cred, answer(200, { code: 'E_BUSY' })).kind, 'retry');
    const limited = classifyHttpAnswer(cred, answer(429, {}, { 'retry-after': '9' }));
    assert.deepEqual([limited.kind, limited.kind === 'retry' ? limited.afterMs : 0], ['retry', 9000]);
    assert.equal(classifyHttpAnswer(cred, answer(200, { code: 'E_OTHER' })).kind, 'failed');
  });

  it('classifies Twilio answers by its documented codes', () => {
    assert.deepEqual(classifyTwilioAnswer(answer(201, { sid: 'SM1', status: 'queued' })), { kind: 'sent', providerId: 'SM1' });
    for (const code of [21211, 21614, 21610]) assert.equal(classifyTwilioAnswer(answer(400, { code, message: 'x', status: 400 })).kind, 'invalid', String(code));
    const limited = classifyTwilioAnswer(answer(429, { code: 20429, status: 429 }, { 'retry-after': '3' }));
    assert.deepEqual([limited.kind, limited.kind !== 'sent' ? limited.reason.code : ''], ['retry', '20429']);
    assert.equal(classifyTwilioAnswer(answer(503, {})).kind, 'retry');
    assert.equal(classifyTwilioAnswer(answer(401, { code: 20003, status: 401 })).kind, 'failed');
    assert.equal(classifyTwilioAnswer({ ok: false, reason: { code: 'ECONNRESET', message: 'reset' } }).kind, 'retry');
  });

  it('verifies X-Twilio-Signature over the callback URL and the sorted parameters, and parses end states', () => {
    // The worked example of Twilio's request validation documentation (Auth Token 12345), with the
    // signature it publishes; parameters given out of order, as a form may carry them.
    const url = 'https://mycompany.com/myapp.php?foo=1&bar=2';
    const params = new URLSearchParams({ To: '+18005551212', Digits: '1234', CallSid: 'CA1234567890ABCDE', From: '+12349013030', Caller: '+12349013030' });
    assert.equal(twilioSignature('12345', url, params), '0/KCTR6DLpKmkAf8muzZqo1nDgQ=');

    const cred = twilioSmsCredentialSchema.parse({ driver: 'twilio', accountSid: `AC${'a'.repeat(32)}`, authToken: 'b'.repeat(32), from: '+15005550006', callbackUrl: 'https://relay.example/v1/receipts/sms/app?secret=s' });
    const body = new URLSearchParams({ MessageSid: 'SM9', MessageStatus: 'undelivered', ErrorCode: '30003', To: '+14155550100' });
    const req = (sig: string, type = 'application/x-www-form-urlencoded') => ({ headers: { 'x-twilio-signature': sig }, rawBody: body.toString(), contentType: type });
    const good = twilioSignature(cred.authToken, cred.callbackUrl!, body);
    assert.equal(verifyTwilioReceipt(cred, req(good)), true);
    assert.equal(verifyTwilioReceipt(cred, req(good.replace(/^./, good[0] === 'A' ? 'B' : 'A'))), false);
    assert.equal(verifyTwilioReceipt({ ...cred, callbackUrl: 'https://relay.example/other' }, req(good)), false);
    assert.equal(verifyTwilioReceipt(cred, { headers: {}, rawBody: body.toString(), contentType: 'application/x-www-form-urlencoded' }), false);
    assert.deepEqual(parseTwilioReceipt(req(good)), [{ event: 'failed', providerId: 'SM9', token: '+14155550100', reason: { code: '30003', message: 'Twilio reports the SMS undelivered (error 30003)' } }]);
    assert.deepEqual(parseTwilioReceipt({ ...req(good), rawBody: 'MessageSid=SM9&MessageStatus=sent' }), []);
    assert.throws(() => parseTwilioReceipt({ ...req(good), rawBody: 'MessageStatus=sent' }));
  });

  it('options.fallback.sms: a delay of 1 s to 72 h and a text', () => {
    assert.equal(fallbackAfterMs('90s'), 90_000);
    assert.equal(fallbackAfterMs('5m'), 300_000);
    const parse = (after: string) => pushRequestSchema.safeParse({ to: { all: true }, notification: { body: 'x' }, options: { fallback: { sms: { after, text: 'hi' } } } });
    assert.equal(parse('1s').success, true);
    assert.equal(parse('72h').success, true);
    for (const bad of ['0s', '73h', '5', '5d', '1.5m']) {
      const r = parse(bad);
      assert.equal(r.success, false, bad);
      assert.deepEqual(r.error!.issues[0]!.path, ['options', 'fallback', 'sms', 'after']);
    }
  });
});
