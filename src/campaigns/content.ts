import type { PushContent } from '../../providers/types.js';
import type { CampaignSpec } from './schema.js';
import { compileTemplate, isStatic, render, type Template } from './template.js';

type Notification = NonNullable<PushContent['notification']>;

interface CompiledText {
  notification: Record<string, unknown>;
  /** Title and body templates of this notification. */
  texts: [key: 'title' | 'body', Template][];
}

interface CompiledVariant {
  base: CompiledText;
  /** Lower-cased locale key → that locale's notification merged over the default. */
  localized: Map<string, CompiledText>;
  data: Record<string, unknown> | undefined;
  dataTexts: [string, Template][];
  overrides: PushContent['overrides'] | undefined;
}

export interface DeviceFacts {
  variant: string | null;
  locale: string | null;
  attributes: Readonly<Record<string, string>>;
}

/**
 * A campaign's content compiled once (README: Campaigns): per variant, the default notification and each
 * locale's, their `{{var|fallback}}` templates parsed. Rendering a device picks the variant, the
 * locale (exact, then language, then the default) and fills the placeholders.
 */
export class CampaignContent {
  private readonly variants = new Map<string | null, CompiledVariant>();
  /** No placeholder, no locale, no variant: every device gets the message as stored. */
  readonly uniform: boolean;

  constructor(spec: Pick<CampaignSpec, 'notification' | 'data' | 'localized' | 'variants' | 'overrides'>) {
    const compileNote = (n: Record<string, unknown>): CompiledText => ({
      notification: n,
      texts: (['title', 'body'] as const).filter((k) => typeof n[k] === 'string').map((k) => [k, compileTemplate(n[k] as string)]),
    });
    const build = (v: { notification?: object; data?: Record<string, unknown>; localized?: Record<string, object>; overrides?: PushContent['overrides'] }): CompiledVariant => {
      const baseNote = { ...(spec.notification ?? {}), ...(v.notification ?? {}) } as Record<string, unknown>;
      const localized = new Map<string, CompiledText>();
      for (const [loc, n] of Object.entries({ ...(spec.localized ?? {}), ...(v.localized ?? {}) })) {
        localized.set(loc.toLowerCase().replace('_', '-'), compileNote({ ...baseNote, ...n }));
      }
      const data = spec.data || v.data ? { ...(spec.data ?? {}), ...(v.data ?? {}) } : undefined;
      const overrides = spec.overrides || v.overrides ? { ...(spec.overrides ?? {}), ...(v.overrides ?? {}) } : undefined;
      return {
        base: compileNote(baseNote),
        localized,
        data,
        dataTexts: Object.entries(data ?? {}).flatMap(([k, val]) => (typeof val === 'string' ? [[k, compileTemplate(val)] as [string, Template]] : [])),
        overrides,
      };
    };
    this.variants.set(null, build({}));
    for (const v of spec.variants ?? []) this.variants.set(v.name, build(v));
    const all = [...this.variants.values()];
    this.uniform =
      !spec.variants &&
      all.every((v) => v.localized.size === 0 && v.base.texts.every(([, t]) => isStatic(t)) && v.dataTexts.every(([, t]) => isStatic(t)));
  }

  private pick(v: CompiledVariant, locale: string | null): CompiledText {
    if (!locale || v.localized.size === 0) return v.base;
    const exact = locale.toLowerCase().replace('_', '-');
    return v.localized.get(exact) ?? v.localized.get(exact.split('-')[0]!) ?? v.base;
  }

  /** The notification, data and overrides one device gets. */
  render(d: DeviceFacts): Pick<PushContent, 'notification' | 'data' | 'overrides'> {
    const v = this.variants.get(d.variant) ?? this.variants.get(null)!;
    const text = this.pick(v, d.locale);
    const notification = { ...text.notification } as Record<string, unknown>;
    for (const [k, t] of text.texts) notification[k] = render(t, d.attributes);
    let data = v.data;
    if (data && v.dataTexts.length > 0) {
      data = { ...data };
      for (const [k, t] of v.dataTexts) data[k] = render(t, d.attributes);
    }
    return {
      ...(Object.keys(notification).length > 0 ? { notification: notification as Notification } : {}),
      ...(data ? { data } : {}),
      ...(v.overrides ? { overrides: v.overrides } : {}),
    };
  }
}
