import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, newApp, startTestRelay, type TestRelay } from '../helpers/harness.js';
import { startProviderMocks } from '../helpers/providers.js';
import { clusterClient, startOwnCluster, type OwnCluster } from '../helpers/redis-cluster.js';

/**
 * Relay on a Redis Cluster of three primaries that the test starts itself: every connection is a
 * cluster client, and QUEUE_PREFIX becomes a hash tag so that each queue's keys (and Relay's own
 * keys) hash to one slot, as BullMQ's Lua scripts need.
 */
let cluster: OwnCluster;
let t: TestRelay;
let mocks: Awaited<ReturnType<typeof startProviderMocks>>;

before(async () => {
  cluster = await startOwnCluster(3);
  mocks = await startProviderMocks();
  t = await startTestRelay({ ...mocks.env, REDIS_CLUSTER_NODES: cluster.env, REDIS_URL: 'redis://127.0.0.1:1' });
});
after(async () => {
  await t?.stop();
  await t?.iso.drop().catch(() => undefined);
  await mocks?.close();
  await cluster?.stop();
});

const apnsToken = (i: number) => 'c' + i.toString(16).padStart(63, '0');

test('pushes go end to end through BullMQ on a three-node Redis Cluster', async () => {
  assert.equal(t.config.QUEUE_PREFIX, `{${t.iso.prefix}}`, 'the prefix is a hash tag');
  const { appId, api } = await newApp(t);
  assert.equal((await api('PUT', `/v1/apps/${appId}/credentials/apns`, mocks.credentials.apns)).status, 200);
  for (let i = 1; i <= 4; i++) {
    assert.equal((await api('PUT', `/v1/devices/k-${i}`, { platform: 'ios', tokens: { apns: apnsToken(i) }, tags: ['all'] })).status, 200);
  }
  // The transactional lane (routed at accept) and the router's lane (a tag audience).
  const direct = await api('POST', '/v1/push', { to: { devices: ['k-1'] }, notification: { title: 'one' } });
  const fanout = await api('POST', '/v1/push', { to: { tags: { any: ['all'] } }, notification: { title: 'all' } });
  assert.equal(direct.status, 202);
  assert.equal(fanout.status, 202);
  for (const [id, n] of [[direct.body.id, 1], [fanout.body.id, 4]] as const) {
    const m = await eventually(async () => {
      const r = await api('GET', `/v1/messages/${id}`);
      return r.body.state === 'done' ? r.body : undefined;
    }, 60_000, `message ${id} done`);
    assert.equal(m.counts.sent, n);
  }
  const got = mocks.apns.requests.filter((r) => r.token.startsWith('c')).map((r) => r.token);
  assert.equal(got.length, 5);
  for (let i = 1; i <= 4; i++) assert.ok(got.includes(apnsToken(i)));

  // Every key Relay made lives in the prefix's slot, on one node.
  const c = clusterClient(cluster);
  try {
    await c.ping();
    const keys: string[] = [];
    const owners = new Set<string>();
    for (const node of c.nodes('master')) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', `${t.config.QUEUE_PREFIX}*`, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
        if (batch.length) owners.add(`${node.options.host}:${node.options.port}`);
      } while (cursor !== '0');
    }
    assert.ok(keys.some((k) => k.includes(':route:')) || keys.some((k) => k.includes(':apns')), `queue keys exist: ${keys.slice(0, 5).join(', ')}`);
    const slots = new Set(await Promise.all(keys.map((k) => c.cluster('KEYSLOT', k))));
    assert.equal(slots.size, 1, 'one hash slot');
    assert.equal(owners.size, 1, 'one node');
  } finally {
    c.disconnect();
  }
});
