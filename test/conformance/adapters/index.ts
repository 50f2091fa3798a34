import type { Channel } from '../../../providers/types.js';
import type { AdapterFactory } from '../harness.js';
import { apnsAdapter } from './apns.js';
import { fcmAdapter } from './fcm.js';
import { honorAdapter } from './honor.js';
import { huaweiAdapter } from './huawei.js';
import { meizuAdapter } from './meizu.js';
import { oppoAdapter } from './oppo.js';
import { selfAdapter } from './self.js';
import { smsAdapter } from './sms.js';
import { vivoAdapter } from './vivo.js';
import { webpushAdapter } from './webpush.js';
import { xiaomiAdapter } from './xiaomi.js';

/** One adapter per channel: every entry of PROVIDER_MODULES, and the built-in self channel. */
export const ADAPTERS: Record<Channel, AdapterFactory> = {
  apns: apnsAdapter,
  fcm: fcmAdapter,
  self: selfAdapter,
  huawei: huaweiAdapter,
  honor: honorAdapter,
  xiaomi: xiaomiAdapter,
  oppo: oppoAdapter,
  vivo: vivoAdapter,
  meizu: meizuAdapter,
  webpush: webpushAdapter,
  sms: smsAdapter,
};
