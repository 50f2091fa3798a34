import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';
import { CHANNELS, CHANNEL_MODULES, VENDOR_CHANNELS, channelConfigShape, deviceTokensSchema } from '../../providers/channels.js';

test('the registry derives the channel lists from the modules', () => {
  assert.deepEqual(CHANNELS, ['apns', 'fcm', 'self', 'huawei', 'xiaomi', 'oppo', 'vivo', 'honor', 'meizu', 'webpush', 'sms']);
  assert.deepEqual([...VENDOR_CHANNELS].sort(), ['honor', 'huawei', 'meizu', 'oppo', 'vivo', 'xiaomi']);
  assert.deepEqual(Object.keys(deviceTokensSchema.shape).sort(), CHANNELS.filter((c) => c !== 'self').sort());
});

test('every channel variable (endpoints, tuning) is in .env.example with the module default', () => {
  const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
  const shape = channelConfigShape();
  const defaults = z.object(shape).parse({});
  for (const env of Object.keys(shape)) {
    const line = example.split('\n').find((l) => new RegExp(`^#?\\s*${env}=`).test(l));
    assert.ok(line, `${env} is listed in .env.example`);
    if (defaults[env] !== undefined) assert.equal(line.replace(/^#?\s*/, '').split('=')[1]?.trim(), String(defaults[env]), `${env} default`);
  }
  assert.ok(CHANNEL_MODULES.every((m) => m.overridesSchema), 'every module documents its overrides');
});
