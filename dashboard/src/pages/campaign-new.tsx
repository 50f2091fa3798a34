import { useState } from 'preact/hooks';
import type { ApiFailure } from '../api';
import { api } from '../api';
import { num } from '../format';
import type { Campaign, Preview } from '../types';
import { Failure, Section } from '../ui';

const PLATFORMS = ['ios', 'android', 'web'] as const;
const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

interface Draft {
  name: string;
  platforms: string[];
  tagsAny: string;
  tagsAll: string;
  tagsNone: string;
  locales: string;
  lastSeen: string;
  title: string;
  body: string;
  perMinute: string;
  at: string;
}

/** The SPEC §7 audience from the form; empty fields are left out (an empty audience is the whole app). */
function audienceOf(d: Draft) {
  const tags = { ...(list(d.tagsAll).length ? { all: list(d.tagsAll) } : {}), ...(list(d.tagsAny).length ? { any: list(d.tagsAny) } : {}), ...(list(d.tagsNone).length ? { none: list(d.tagsNone) } : {}) };
  return {
    ...(d.platforms.length ? { platforms: d.platforms } : {}),
    ...(Object.keys(tags).length ? { tags } : {}),
    ...(list(d.locales).length ? { locales: list(d.locales) } : {}),
    ...(d.lastSeen ? { lastSeen: { within: d.lastSeen } } : {}),
  };
}

function Field({ label, value, onInput, hint, ...rest }: { label: string; value: string; onInput: (v: string) => void; hint?: string; [k: string]: unknown }) {
  const id = `f-${label.toLowerCase().replace(/[^a-z]+/g, '-')}`;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} value={value} onInput={(e) => onInput((e.target as HTMLInputElement).value)} aria-describedby={hint ? `${id}-hint` : undefined} {...rest} />
      {hint ? (
        <small id={`${id}-hint`} class="muted">
          {hint}
        </small>
      ) : null}
    </div>
  );
}

export function NewCampaign({ go }: { go: (path: string) => void }) {
  const [d, setD] = useState<Draft>({ name: '', platforms: [], tagsAny: '', tagsAll: '', tagsNone: '', locales: '', lastSeen: '', title: '', body: '', perMinute: '', at: '' });
  const [preview, setPreview] = useState<Preview>();
  const [failure, setFailure] = useState<ApiFailure>();
  const [busy, setBusy] = useState(false);
  // A preview counts the audience it was asked for: changing a filter clears it, content does not.
  const AUDIENCE: (keyof Draft)[] = ['platforms', 'tagsAny', 'tagsAll', 'tagsNone', 'locales', 'lastSeen'];
  const set = (k: keyof Draft) => (v: string) => {
    setD({ ...d, [k]: v });
    if (AUDIENCE.includes(k)) setPreview(undefined);
  };

  async function run<T>(f: () => Promise<T>): Promise<T | undefined> {
    setBusy(true);
    setFailure(undefined);
    try {
      return await f();
    } catch (e) {
      setFailure(e as ApiFailure);
      return undefined;
    } finally {
      setBusy(false);
    }
  }

  const doPreview = () => run(() => api<Preview>('/v1/campaigns/preview', { method: 'POST', body: { audience: audienceOf(d) } })).then((p) => p && setPreview(p));

  async function create(e: Event) {
    e.preventDefault();
    const created = await run(() =>
      api<Campaign>('/v1/campaigns', {
        method: 'POST',
        body: {
          name: d.name,
          audience: audienceOf(d),
          notification: { title: d.title, body: d.body },
          ...(d.perMinute ? { throttle: { perMinute: Number(d.perMinute) } } : {}),
          ...(d.at ? { schedule: { at: new Date(d.at).toISOString() } } : {}),
        },
      }),
    );
    if (created) go(`/campaigns/${encodeURIComponent(created.id)}`);
  }

  return (
    <Section title="New campaign">
      <form class="form" onSubmit={create} aria-describedby="new-help">
        <p id="new-help" class="muted">
          Every audience filter is optional; together they narrow the audience. Preview counts the devices before anything is sent.
        </p>
        <Field label="Name" value={d.name} onInput={set('name')} required maxLength={200} />
        <fieldset>
          <legend>Platforms</legend>
          {PLATFORMS.map((p) => (
            <label class="check">
              <input
                type="checkbox"
                checked={d.platforms.includes(p)}
                onChange={(e) => (setD({ ...d, platforms: (e.target as HTMLInputElement).checked ? [...d.platforms, p] : d.platforms.filter((x) => x !== p) }), setPreview(undefined))}
              />
              {p}
            </label>
          ))}
        </fieldset>
        <Field label="Tags: any of" value={d.tagsAny} onInput={set('tagsAny')} hint="comma-separated, e.g. vip, beta" />
        <Field label="Tags: all of" value={d.tagsAll} onInput={set('tagsAll')} />
        <Field label="Tags: none of" value={d.tagsNone} onInput={set('tagsNone')} />
        <Field label="Locales" value={d.locales} onInput={set('locales')} hint="prefixes: zh matches zh-CN" />
        <Field label="Seen within" value={d.lastSeen} onInput={set('lastSeen')} hint="a duration like 30d; empty: any" pattern="\d+[smhd]" />
        <div class="actions">
          <button type="button" onClick={doPreview} disabled={busy}>
            Preview audience
          </button>
          <output aria-live="polite" data-testid="preview-total">
            {preview ? `${num(preview.total)} devices` : ''}
          </output>
        </div>
        {preview ? (
          <p class="muted" data-testid="preview-split">
            {Object.entries(preview.byPlatform ?? {})
              .map(([k, v]) => `${k} ${num(v)}`)
              .join(' · ')}
            {' — by channel: '}
            {Object.entries(preview.byChannel ?? {})
              .map(([k, v]) => `${k === 'none' ? 'no usable channel' : k} ${num(v)}`)
              .join(' · ')}
          </p>
        ) : null}
        <Field label="Title" value={d.title} onInput={set('title')} required maxLength={200} />
        <div class="field">
          <label for="f-body">Body</label>
          <textarea id="f-body" value={d.body} onInput={(e) => set('body')((e.target as HTMLTextAreaElement).value)} rows={3} required aria-describedby="f-body-hint" />
          <small id="f-body-hint" class="muted">
            {'{{first_name|there}}'} fills a device attribute, with a fallback.
          </small>
        </div>
        <Field label="Throttle (per minute)" value={d.perMinute} onInput={set('perMinute')} type="number" min={1} hint="empty: as fast as the channels take it" />
        <Field label="Send at" value={d.at} onInput={set('at')} type="datetime-local" hint="empty: now" />
        <Failure error={failure} />
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Create campaign
          </button>
        </div>
      </form>
    </Section>
  );
}
