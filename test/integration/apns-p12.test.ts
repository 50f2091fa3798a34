import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mockToken, startApnsMock, type ApnsMock } from '../mocks/apns-server.js';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';

const BUNDLE = 'com.example.p12';
const PASS = 'keychain export pass';

/** A provider certificate with the Apple Push Services (sandbox) extension, as PEM and as a .p12 (base64). */
function providerCertificate(): { cert: string; key: string; p12: string } {
  const dir = mkdtempSync(join(tmpdir(), 'relay-apns-p12-'));
  try {
    const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '2',
      '-subj', `/CN=Apple Development IOS Push Services: ${BUNDLE}/UID=${BUNDLE}`, '-addext', '1.2.840.113635.100.6.3.1=DER:05:00');
    ossl('pkcs12', '-export', '-in', 'c.pem', '-inkey', 'k.pem', '-out', 'b.p12', '-passout', `pass:${PASS}`);
    return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8'), p12: readFileSync(join(dir, 'b.p12')).toString('base64') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('APNs certificate auth with a .p12 bundle, through the REST API against the APNs mock', () => {
  let t: TestRelay;
  let mock: ApnsMock;
  let registered: ReturnType<typeof providerCertificate>;
  let stranger: ReturnType<typeof providerCertificate>;

  before(async () => {
    registered = providerCertificate();
    stranger = providerCertificate();
    // The mock trusts only the registered provider certificate, and asks every client for one.
    mock = await startApnsMock({ bundleIds: [BUNDLE], clientCerts: [registered.cert] });
    t = await startTestRelay({ APNS_ENDPOINT: mock.url });
  });
  after(async () => {
    await t?.stop();
    await t?.iso.drop();
    await mock?.close();
  });

  const pushTo = async (app: Awaited<ReturnType<typeof newApp>>, token: string) => {
    const d = await app.api('PUT', '/v1/devices/iphone-1', { platform: 'ios', tokens: { apns: token } });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    const p = await app.api('POST', '/v1/push', { to: { devices: ['iphone-1'] }, notification: { title: 'p12', body: 'hello' } });
    assert.equal(p.status, 202, JSON.stringify(p.body));
    return eventually(async () => {
      const page = await app.api('GET', `/v1/messages/${p.body.id}/deliveries`);
      const item = page.body.items[0];
      return item && item.status !== 'queued' ? item : undefined;
    }, 30_000, 'the APNs delivery settled');
  };

  test('a wrong passphrase or a broken bundle is a 400 naming the field; the right one is stored', async () => {
    const app = await newApp(t);
    const put = (body: Record<string, unknown>) => app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, { bundleId: BUNDLE, production: false, ...body });
    const wrong = await put({ p12: registered.p12, passphrase: 'not it' });
    assert.equal(wrong.status, 400, JSON.stringify(wrong.body));
    assert.match(JSON.stringify(wrong.body.error), /body\.passphrase/);
    const none = await put({ p12: registered.p12 });
    assert.equal(none.status, 400);
    assert.match(JSON.stringify(none.body.error), /body\.passphrase/);
    const garbage = await put({ p12: Buffer.from('not a pkcs12 bundle').toString('base64'), passphrase: PASS });
    assert.equal(garbage.status, 400);
    assert.match(JSON.stringify(garbage.body.error), /body\.p12/);
    const mixed = await put({ p12: registered.p12, passphrase: PASS, cert: registered.cert });
    assert.equal(mixed.status, 400);
    assert.match(JSON.stringify(mixed.body.error), /body\.cert/);
    const production = await put({ p12: registered.p12, passphrase: PASS, production: true });
    assert.equal(production.status, 400, 'a sandbox certificate cannot serve production');
    assert.match(JSON.stringify(production.body.error), /body\.production/);

    const ok = await put({ p12: registered.p12, passphrase: PASS });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.info.auth, 'certificate');
    assert.equal(ok.body.info.format, 'p12');
    assert.deepEqual(ok.body.info.environments, ['sandbox']);
    assert.match(String(ok.body.info.subject), /Push Services/);
    assert.ok(!JSON.stringify(ok.body).includes(registered.p12.slice(0, 40)), 'the bundle is never shown');
  });

  test('a push goes out over a TLS connection authenticated by the .p12’s certificate (no JWT)', async () => {
    const app = await newApp(t);
    const ok = await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, { p12: registered.p12, passphrase: PASS, bundleId: BUNDLE, production: false });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const token = mockToken('ok', 0x912);
    const fate = await pushTo(app, token);
    assert.equal(fate.status, 'sent', JSON.stringify(fate));
    const req = mock.requests.find((r) => r.token === token);
    assert.ok(req, 'the mock got the push');
    assert.equal(req.status, 200);
    assert.equal(req.headers.authorization, undefined, 'certificate trust: no provider token');
    assert.equal(req.headers['apns-topic'], BUNDLE);
  });

  test('the mock refuses a certificate it does not know: the client certificate really is checked', async () => {
    const app = await newApp(t);
    const put = await app.api('PUT', `/v1/apps/${app.appId}/credentials/apns`, { cert: stranger.cert, key: stranger.key, bundleId: BUNDLE, production: false });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const fate = await pushTo(app, mockToken('ok', 0x913));
    assert.equal(fate.status, 'failed', JSON.stringify(fate));
    assert.equal(fate.error.code, 'BadCertificate');
  });
});
