import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiProcessCount } from '../../src/api-cluster.js';
import { loadConfig } from '../../src/config.js';
import { DAY_MS, firstIdOfDay, partitionName } from '../../src/db/partitions-repo.js';
import { parseClusterNodes } from '../../src/redis.js';

test('delivery ids carry their UTC day and stay exact as JSON numbers until 2149', () => {
  const day = Math.floor(Date.UTC(2026, 11, 7) / DAY_MS);
  assert.equal(partitionName(day), 'deliveries_20261207');
  assert.equal(firstIdOfDay(day + 1) - firstIdOfDay(day), 2n ** 37n);
  assert.ok(firstIdOfDay(Math.floor(Date.UTC(2149, 0, 1) / DAY_MS)) < 2n ** 53n);
});

test('REDIS_CLUSTER_NODES makes QUEUE_PREFIX a hash tag', () => {
  assert.equal(loadConfig({}).QUEUE_PREFIX, 'relay');
  assert.equal(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7001' }).QUEUE_PREFIX, '{relay}');
  assert.equal(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000', QUEUE_PREFIX: '{mine}' }).QUEUE_PREFIX, '{mine}');
  assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'nohost' }), /REDIS_CLUSTER_NODES/);
  assert.deepEqual(parseClusterNodes(' a:1, [::1]:2 '), [{ host: 'a', port: 1 }, { host: '::1', port: 2 }]);
});

test('API_PROCESSES, else WEB_CONCURRENCY; one process on the embedded database or without the api role', () => {
  const pg = { DATABASE_URL: 'postgres://x/y' };
  assert.equal(apiProcessCount(loadConfig({ ...pg, API_PROCESSES: '3' }), {}), 3);
  assert.equal(apiProcessCount(loadConfig(pg), { WEB_CONCURRENCY: '2' }), 2);
  assert.equal(apiProcessCount(loadConfig(pg), {}), 1);
  assert.equal(apiProcessCount(loadConfig({ API_PROCESSES: '3' }), {}), 1, 'PGlite opens in one process');
  assert.equal(apiProcessCount(loadConfig({ ...pg, API_PROCESSES: '3', ROLES: 'worker' }), {}), 1);
});

test('DELIVERY_RETENTION outlives the longest TTL and a day of retries', () => {
  assert.throws(() => loadConfig({ DELIVERY_RETENTION: '7d' }), /DELIVERY_RETENTION: at least 29d/);
  assert.equal(loadConfig({ DELIVERY_RETENTION: '30d' }).DELIVERY_RETENTION, 30 * 86_400_000);
});
