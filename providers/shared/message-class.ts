import { z } from 'zod';
import { stripUndefined } from './json.js';

/**
 * Message classes: the vendor-neutral `options.category` of a push, turned into what each Chinese
 * vendor classifies messages by (their categories, importance, channel ids). The category tables
 * themselves live in each vendor's module (`<vendor>Class`); this module holds the neutral list,
 * the per-credential `categoryMap` and the precedence rules.
 */


/**
 * The vendor-neutral categories `options.category` may take. Everything in the first group is a
 * "service & communication" message (华为/荣耀 服务与通讯, 小米 私信, OPPO 通讯与服务, vivo 系统,
 * 魅族 私信); the second group is "content & marketing" (资讯营销, 公信, 内容与营销, 运营),
 * which vendors cap per device per day.
 */
export const SERVICE_CATEGORIES = [
  'im', 'voip', 'account', 'order', 'todo', 'reminder', 'subscription', 'travel', 'health', 'work', 'finance',
  'express', 'mail', 'system',
] as const;
export const MARKETING_CATEGORIES = ['marketing', 'news', 'content', 'social'] as const;
export const NEUTRAL_CATEGORIES = [...SERVICE_CATEGORIES, ...MARKETING_CATEGORIES] as const;
export type NeutralCategory = (typeof NEUTRAL_CATEGORIES)[number];

/** Everything a vendor may need to classify a message; each provider reads the fields it knows. */
export interface VendorMessageClass {
  /** `service` = 服务与通讯 / 私信 / 系统 ; `marketing` = 资讯营销 / 公信 / 运营. */
  kind: 'service' | 'marketing';
  /** Huawei `android.category`, OPPO / vivo `category` (vendor spelling, uppercase). */
  category?: string;
  /** Huawei / Honor `importance`. */
  importance?: 'LOW' | 'NORMAL';
  /** An app-registered notification channel id (Xiaomi `extra.channel_id`, OPPO `channel_id`, Huawei / vivo channel). */
  channelId?: string;
  /** vivo `classification` (0 operation, 1 system). */
  classification?: 0 | 1;
  /** Meizu `noticeMsgType` (0 公信, 1 私信). */
  noticeMsgType?: 0 | 1;
}

export const vendorMessageClassSchema = z
  .object({
    kind: z.enum(['service', 'marketing']).optional(),
    category: z.string().regex(/^[A-Z_]+$/, 'vendor categories are uppercase, e.g. IM').optional(),
    importance: z.enum(['LOW', 'NORMAL']).optional(),
    channelId: z.string().min(1).max(200).optional(),
    classification: z.union([z.literal(0), z.literal(1)]).optional(),
    noticeMsgType: z.union([z.literal(0), z.literal(1)]).optional(),
  })
  .strict();
export type VendorMessageClassOverride = z.infer<typeof vendorMessageClassSchema>;

/**
 * Per-credential overrides: neutral category (or `default`, used when the message names no or an
 * unknown category) → fields merged over the built-in mapping. Credentials carry it as
 * `categoryMap`, e.g. Xiaomi `{"im": {"channelId": "108423"}, "marketing": {"channelId": "108424"}}`.
 */
export const categoryMapSchema = z.record(z.string().min(1).max(40), vendorMessageClassSchema);
export type CategoryMap = z.infer<typeof categoryMapSchema>;

/** The service / marketing split of a neutral category. */
export function categoryKind(cat: NeutralCategory): VendorMessageClass['kind'] {
  return (MARKETING_CATEGORIES as readonly string[]).includes(cat) ? 'marketing' : 'service';
}

/** A vendor's built-in mapping of a neutral category (exported by each vendor module). */
export type BuiltinClass = (cat: NeutralCategory, kind: VendorMessageClass['kind']) => Omit<VendorMessageClass, 'kind'>;

export function isNeutralCategory(s: string): s is NeutralCategory {
  return (NEUTRAL_CATEGORIES as readonly string[]).includes(s);
}

/**
 * The vendor message class for `category` (case-insensitive), or undefined when the message names
 * none and the credential's `categoryMap` has no `default`: then the provider sends no
 * classification and the vendor applies its own default.
 * Precedence (last wins): the vendor's built-in mapping (`builtin`) → `categoryMap.default` (only
 * for missing / unknown categories) → `categoryMap[category]` → `override` (the request's
 * `overrides.<vendor>` fields).
 */
export function messageClass(
  builtin: BuiltinClass,
  category: string | undefined,
  categoryMap?: CategoryMap,
  override?: VendorMessageClassOverride,
): VendorMessageClass | undefined {
  const cat = category?.trim().toLowerCase();
  let out: VendorMessageClass | undefined;
  if (cat && isNeutralCategory(cat)) {
    const kind = categoryKind(cat);
    out = { kind, ...builtin(cat, kind) };
  } else if (categoryMap?.default) out = { kind: 'service', ...stripUndefined(categoryMap.default) };
  if (cat && categoryMap?.[cat]) out = { ...(out ?? { kind: 'service' }), ...stripUndefined(categoryMap[cat]) };
  if (override && Object.values(override).some((v) => v !== undefined)) {
    out = { ...(out ?? { kind: 'service' }), ...stripUndefined(override) };
  }
  return out;
}
