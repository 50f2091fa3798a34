import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkGatewayUrl, guardedFetch, isPublicAddress } from '../../providers/sms/guarded-fetch.js';
import { redactUrl } from '../../providers/shared/http.js';

test('only public addresses are public: loopback, private, link-local (metadata), CGNAT, mapped and ULA are not', () => {
  for (const a of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1', '::ffff:127.0.0.1']) {
    assert.equal(isPublicAddress(a), false, a);
  }
  for (const a of ['8.8.8.8', '52.1.2.3', '2606:4700::1111', '::ffff:8.8.8.8']) assert.equal(isPublicAddress(a), true, a);
});

test('a gateway URL must be https to a public host, unless it is the operator’s trusted host', () => {
  assert.throws(() => checkGatewayUrl('http://sms.example.com/send', undefined), /must be https/);
  assert.throws(() => checkGatewayUrl('https://169.254.169.254/latest/meta-data', undefined), /not a public address/);
  assert.throws(() => checkGatewayUrl('https://[::1]:6379/', undefined), /not a public address/);
  assert.throws(() => checkGatewayUrl('file:///etc/passwd', undefined), /not allowed/);
  assert.equal(checkGatewayUrl('https://sms.example.com/send', undefined).hostname, 'sms.example.com');
  assert.equal(checkGatewayUrl('http://127.0.0.1:8080/send', 'http://127.0.0.1').port, '8080');
  assert.throws(() => checkGatewayUrl('http://127.0.0.2:8080/send', 'http://127.0.0.1'), /must be https/);
  assert.throws(() => checkGatewayUrl('https://127.0.0.1/send', 'http://127.0.0.1'), /not a public address/);
});

test('a host name that resolves to a private address is refused when the connection is made', async () => {
  const res = await guardedFetch('https://localhost:9/send', { method: 'POST', headers: {}, body: '{}' });
  assert.equal(res.ok, false);
  assert.ok(!res.ok && res.reason.code === 'url_refused', JSON.stringify(res));
  assert.match(!res.ok ? res.reason.message : '', /resolves to/);
});

test('redacted URLs keep neither the query nor the user info', () => {
  assert.equal(redactUrl('https://user:secret@gw.example.com/send?key=abc'), 'https://gw.example.com/send');
  assert.equal(redactUrl('https://gw.example.com/v1/{{to}}'), 'https://gw.example.com/v1/{{to}}');
});
