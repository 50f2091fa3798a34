// Regenerates docs/dashboard.png: Relay with the APNs and FCM mocks, a few minutes of pushes,
// receipts and opens, then the overview at "last hour, minute buckets" in Chromium.
// Usage: NODE_EXTRA_CA_CERTS=$(…testPki().caPath) npx tsx test/browser/screenshot.ts [minutes]
import { chromium } from 'playwright-core';
import { chromiumPath } from '../helpers/chromium.js';
import { newApp, startTestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { mockToken } from '../mocks/apns-server.js';

const minutes = Number(process.argv[2] ?? 4);
const mocks = await startProviderMocks();
const t = await startTestRelay({ ...mocks.env });
const app = await newApp(t);
for (const p of ['apns', 'fcm'] as const) await app.api('PUT', `/v1/apps/${app.appId}/credentials/${p}`, mocks.credentials[p]);
const devices: string[] = [];
for (let i = 0; i < 120; i++) {
  const id = `ios-${i}`;
  await app.api('PUT', `/v1/devices/${id}`, { platform: 'ios', tokens: { apns: mockToken(i % 17 === 0 ? 'unregistered' : 'ok', i) }, tags: ['all'] });
  devices.push(id);
}
for (let i = 0; i < 80; i++) {
  const token = `fcm-${i}`;
  if (i % 13 === 0) mocks.fcm.setBehavior(token, { error: 'UNREGISTERED' });
  if (i % 29 === 5) mocks.fcm.setBehavior(token, { error: 'SENDER_ID_MISMATCH' });
  await app.api('PUT', `/v1/devices/and-${i}`, { platform: 'android', brand: 'samsung', tokens: { fcm: token }, tags: ['all'] });
  devices.push(`and-${i}`);
}
const rounds = minutes * 2;
for (let r = 0; r < rounds; r++) {
  const push = await app.api('POST', '/v1/push', { to: { tags: { all: ['all'] } }, notification: { title: `Round ${r}`, body: 'hello' } });
  await new Promise((res) => setTimeout(res, 5000));
  // Receipts for most, opens for a few, varying by round.
  const share = 0.6 + 0.3 * Math.sin(r);
  const events = devices.filter((_, i) => (i * 7 + r) % 100 < share * 100).map((deviceId) => ({ deviceId, messageId: push.body.id, event: 'delivered' }));
  const opens = devices.filter((_, i) => (i * 11 + r * 3) % 100 < 8 + r).map((deviceId) => ({ deviceId, messageId: push.body.id, event: 'opened' }));
  await app.api('POST', '/v1/events', { events: [...events, ...opens] });
  await new Promise((res) => setTimeout(res, 25_000));
}
const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
await ctx.addInitScript((key) => sessionStorage.setItem('relay.key', key), app.key);
const page = await ctx.newPage();
await page.goto(`${t.base}/dashboard/`);
await page.getByLabel('Range').selectOption('hour');
await page.locator('figure.chart canvas').first().waitFor();
await page.waitForTimeout(1500);
await page.screenshot({ path: 'docs/dashboard.png', fullPage: true });
console.log('wrote docs/dashboard.png');
await browser.close();
await t.stop();
await t.iso.drop();
await mocks.close();
process.exit(0);
