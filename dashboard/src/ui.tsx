import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { ApiFailure } from './api';
import { delivered, num, pct, reached } from './format';
import { STATUSES, type Counts } from './types';

export function Failure({ error }: { error: ApiFailure | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.message}
    </p>
  );
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  const h = id ?? title.toLowerCase().replace(/[^a-z]+/g, '-');
  return (
    <section aria-labelledby={`h-${h}`} class="card">
      <h2 id={`h-${h}`}>{title}</h2>
      {children}
    </section>
  );
}

export function Stat({ label, value, testId, hint }: { label: string; value: string; testId: string; hint?: string }) {
  return (
    <div class="stat">
      <dt>{label}</dt>
      <dd data-testid={testId}>{value}</dd>
      {hint ? <dd class="hint">{hint}</dd> : null}
    </div>
  );
}

/**
 * Counts per delivery state as one table row per group (a message's channels, a campaign's
 * variants). A row's `rate`, when the API gives one (a campaign and its variants), is shown as
 * given; else delivered / sent is computed from the counts.
 */
export function CountsTable({ caption, rows, first }: { caption: string; rows: { name: string; counts: Counts; rate?: number | null | undefined }[]; first: string }) {
  return (
    <div class="scroll">
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{first}</th>
            {STATUSES.map((s) => (
              <th scope="col" class="n">
                {s}
              </th>
            ))}
            <th scope="col" class="n">
              delivered / sent
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr>
              <th scope="row">{r.name}</th>
              {STATUSES.map((s) => (
                <td class="n" data-testid={`${r.name}-${s}`}>
                  {num(r.counts[s] ?? 0)}
                </td>
              ))}
              <td class="n" data-testid={`${r.name}-rate`}>{pct('rate' in r ? r.rate : reached(r.counts) ? delivered(r.counts) / reached(r.counts) : null)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The one row of an empty table body, when the data has arrived and holds nothing. */
export function EmptyRow({ show, cols, children }: { show: boolean; cols: number; children: ComponentChildren }) {
  return show ? (
    <tr>
      <td colSpan={cols} class="muted">
        {children}
      </td>
    </tr>
  ) : null;
}

/**
 * Cursor paging as the API does it (`next` only): the cursors of the pages before this one are
 * kept for the "previous" button. `cursor` is the current page's, undefined on the first.
 */
export function useCursors() {
  const [cursors, setCursors] = useState<string[]>([]);
  return { cursor: cursors[cursors.length - 1], page: cursors.length + 1, reset: () => setCursors([]), cursors, setCursors };
}

export function Pager({ paging, next, label, prevLabel, nextLabel }: { paging: ReturnType<typeof useCursors>; next: string | null | undefined; label: string; prevLabel: string; nextLabel: string }) {
  const { cursors, setCursors } = paging;
  return (
    <nav class="pager" aria-label={label}>
      <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
        {prevLabel}
      </button>
      <button type="button" disabled={!next} onClick={() => next && setCursors([...cursors, next])}>
        {nextLabel}
      </button>
    </nav>
  );
}

/** A select with its own <label for>: the label names the control, not the options' text. */
export function Choice({ label, id, value, onChange, options, inline }: { label: string; id: string; value: string; onChange: (v: string) => void; options: readonly (readonly [string, string])[]; inline?: boolean }) {
  return (
    <div class={inline ? 'ctl inline' : 'ctl'}>
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {options.map(([v, l]) => (
          <option value={v}>{l}</option>
        ))}
      </select>
    </div>
  );
}
