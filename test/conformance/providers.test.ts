import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { PROVIDER_MODULES } from '../../providers/registry.js';
import { CHANNELS } from '../../providers/channels.js';
import { testPki } from '../mocks/tls.js';
import { ADAPTERS } from './adapters/index.js';
import { conformanceSuite } from './suite.js';

/**
 * One provider conformance suite: the same scenarios against every provider, each through its
 * ProviderModule `create()` and against its own mock on an ephemeral port (adapters/<channel>.ts);
 * the built-in self channel through a Relay's provider registry, against its gateway and real
 * MQTT devices (adapters/self.ts).
 * Assertions are on outcome kinds, codes and evidence, and on what reached the mock; never on time.
 *
 * Run by `npm test` (which sets NODE_EXTRA_CA_CERTS to the test CA), or by hand:
 *   NODE_EXTRA_CA_CERTS=$(node --import tsx -e "import('./test/mocks/tls.ts').then(m=>console.log(m.testPki().caPath))") \
 *     node --import tsx --test test/conformance/providers.test.ts
 */

test('every channel has a conformance adapter: each registered provider module and the built-in self channel', () => {
  assert.deepEqual(Object.keys(ADAPTERS).sort(), [...CHANNELS].sort());
  for (const channel of Object.keys(PROVIDER_MODULES)) assert.ok(channel in ADAPTERS, `${channel} has an adapter`);
});

test('the test CA is trusted process-wide (vendor and Web Push providers use fetch, which ignores ctx.tls)', () => {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  assert.ok(file, 'run with NODE_EXTRA_CA_CERTS=<test CA> (npm test sets it; see the header of this file)');
  assert.ok(readFileSync(file, 'utf8').includes(testPki().caPem.trim()), `${file} does not hold the test CA`);
});

conformanceSuite(ADAPTERS);
