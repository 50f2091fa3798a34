import type { NeutralCategory } from './message-class.js';

/**
 * The message categories OPPO and vivo both use (the same list, spelled the same: 通讯与服务 /
 * 内容与营销), for each neutral category. Each of the two modules adds what only it sends.
 * Sources: docs/vendors/oppo-vivo-meizu.md.
 */
export const OPPO_VIVO_CATEGORY: Partial<Record<NeutralCategory, string>> = {
  im: 'IM', voip: 'IM', account: 'ACCOUNT', order: 'ORDER', express: 'ORDER', todo: 'TODO', work: 'TODO',
  reminder: 'DEVICE_REMINDER', system: 'DEVICE_REMINDER', subscription: 'SUBSCRIPTION', travel: 'ORDER',
  health: 'DEVICE_REMINDER', finance: 'ACCOUNT', mail: 'IM', marketing: 'MARKETING', news: 'NEWS', content: 'CONTENT',
  social: 'SOCIAL',
};

/** The category of a neutral category on OPPO and vivo, as a partial class. */
export function oppoVivoCategory(cat: NeutralCategory): { category?: string } {
  const c = OPPO_VIVO_CATEGORY[cat];
  return c ? { category: c } : {};
}
