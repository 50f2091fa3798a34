import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startRelay, type Relay } from '../../src/relay.js';
import { Isolation, eventually, newApp, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';

/** Campaigns on the zero-setup default, the embedded PGlite: migration 0008, audience SQL, dispatch. */
let t: TestRelay;
let relay: Relay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;
const iso = new Isolation();

before(async () => {
  mocks = await startProviderMocks();
  const env: Record<string, string> = iso.env({ ...mocks.env, CAMPAIGN_TICK: '50ms' });
  delete env.DATABASE_URL;
  delete env.DATABASE_SCHEMA;
  const config = loadConfig(env);
  relay = await startRelay(config, createLogger(config.LOG_LEVEL), () => undefined);
  t = { relay, config, base: `http://127.0.0.1:${relay.port}`, adminToken: config.ADMIN_TOKEN!, iso, stop: () => relay.stop() };
});
after(async () => {
  await relay?.stop();
  await mocks?.close();
  await iso.drop();
  rmSync(`/tmp/${iso.prefix}`, { recursive: true, force: true });
});

test('embedded PGlite: audience filters, preview and a localized, personalised campaign', async () => {
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/fcm`, mocks.credentials.fcm)).status, 200);
  const put = (id: string, extra: Record<string, unknown>) => api('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'samsung', tokens: { fcm: `fcm-emb-${id}` }, ...extra });
  await put('a', { locale: 'zh-CN', appVersion: '2.10.0', attributes: { first_name: '小明' }, timezone: 'Asia/Shanghai' });
  await put('b', { locale: 'en-US', appVersion: '2.9.1', attributes: { first_name: 'Ada' } });
  const preview = await api('POST', '/v1/campaigns/preview', { audience: { appVersion: { gte: '2.10' } } });
  assert.equal(preview.status, 200, JSON.stringify(preview.body));
  assert.deepEqual(preview.body, { total: 1, byPlatform: { android: 1 }, byChannel: { fcm: 1 } });
  assert.equal((await api('POST', '/v1/campaigns/preview', { audience: { locales: ['en'] } })).body.total, 1);
  const c = await api('POST', '/v1/campaigns', {
    name: 'embedded',
    notification: { title: 'Hi {{first_name|there}}' },
    localized: { zh: { title: '你好 {{first_name|朋友}}' } },
    frequencyCap: { perDay: 3 },
  });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  await eventually(async () => {
    const g = await api('GET', `/v1/campaigns/${c.body.id}`);
    return g.body.state === 'completed' && g.body.counts.sent === 2 ? true : undefined;
  }, 30_000, 'campaign sent');
  const titles = new Map(mocks.fcm.requests.filter((r) => r.token?.startsWith('fcm-emb-')).map((r) => [r.token, (r.body as any).message.notification.title]));
  assert.equal(titles.get('fcm-emb-a'), '你好 小明');
  assert.equal(titles.get('fcm-emb-b'), 'Hi Ada');

});
