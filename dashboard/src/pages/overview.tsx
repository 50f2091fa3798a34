import { useMemo, useState } from 'preact/hooks';
import { api, qs } from '../api';
import { TimeChart, type Line } from '../chart';
import { keyLabel, num, pct, rate } from '../format';
import { useLoad } from '../hooks';
import { POINT_FIELDS, type Campaign, type StatsErrors, type PointField, type QueueDepth, type Stats } from '../types';
import { Choice, EmptyRow, Failure, Section, Stat } from '../ui';

type Interval = 'minute' | 'hour' | 'day';
const STEP_MS: Record<Interval, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const BUCKET_LABELS: Record<Interval, string> = { minute: 'Minute', hour: 'Hour', day: 'Day' };
// Each range offers the buckets finer than itself that GET /v1/stats serves (at most 1,440 points
// a series: a week of minutes is refused); the first is the default.
const RANGES: Record<'hour' | 'day' | 'week', { label: string; ms: number; buckets: Interval[] }> = {
  hour: { label: 'Last hour', ms: 3_600_000, buckets: ['minute'] },
  day: { label: 'Last 24 hours', ms: 86_400_000, buckets: ['hour', 'minute'] },
  week: { label: 'Last 7 days', ms: 7 * 86_400_000, buckets: ['day', 'hour'] },
};
type Range = keyof typeof RANGES;

/**
 * The range ends where the current bucket ends (as the API's own default `to` does), so it holds
 * whole buckets: exactly range / bucket points, the last one still filling.
 */
function spanOf(range: Range, interval: Interval): { from: string; to: string } {
  const step = STEP_MS[interval];
  const to = Math.ceil((Date.now() + 1) / step) * step;
  return { from: new Date(to - RANGES[range].ms).toISOString(), to: new Date(to).toISOString() };
}
const SPLITS = ['channel', 'platform', 'campaign', 'variant'] as const;
type Split = (typeof SPLITS)[number];

/** One x axis for every series (the union of their bucket times) and one y column per series. */
function align(series: Stats['series'], field: PointField, label: (key: Stats['series'][number]['key']) => string): { times: number[]; lines: Line[] } {
  const ts = [...new Set(series.flatMap((s) => s.points.map((p) => Date.parse(p.t))))].sort((a, b) => a - b);
  const lines = series.map((s) => {
    const byT = new Map(s.points.map((p) => [Date.parse(p.t), p[field] ?? 0]));
    return { label: label(s.key), values: ts.map((t) => byT.get(t) ?? 0) };
  });
  return { times: ts.map((t) => t / 1000), lines };
}

/** The funnel over time: the ungrouped series summed per bucket, one line per step. */
function funnelLines(stats: Stats, fields: readonly PointField[]): { times: number[]; lines: Line[] } {
  const sum = new Map<number, Partial<Record<PointField, number>>>();
  for (const s of stats.series)
    for (const p of s.points) {
      const t = Date.parse(p.t);
      const acc = sum.get(t) ?? {};
      for (const f of POINT_FIELDS) acc[f] = (acc[f] ?? 0) + (p[f] ?? 0);
      sum.set(t, acc);
    }
  const ts = [...sum.keys()].sort((a, b) => a - b);
  return { times: ts.map((t) => t / 1000), lines: fields.map((f) => ({ label: f, values: ts.map((t) => sum.get(t)![f] ?? 0) })) };
}

// Stats name a campaign by id; a marketer knows it by name. The busiest few are looked up (the
// series come busiest first), the rest keep their id.
const NAMED_CAMPAIGNS = 20;
async function campaignNames(series: Stats['series']): Promise<Record<string, string>> {
  const ids = [...new Set(series.map((s) => s.key.campaign).filter((c): c is string => !!c))].slice(0, NAMED_CAMPAIGNS);
  const named = await Promise.all(ids.map((id) => api<Campaign>(`/v1/campaigns/${encodeURIComponent(id)}`).then((c) => [id, c.name] as const, () => [id, id] as const)));
  return Object.fromEntries(named);
}

const totalsOf = (points: Stats['series'][number]['points']) => {
  const t: Partial<Record<PointField, number>> = {};
  for (const p of points) for (const f of POINT_FIELDS) t[f] = (t[f] ?? 0) + (p[f] ?? 0);
  return t;
};

export function Overview({ app }: { app: string | null }) {
  const [range, setRange] = useState<Range>('day');
  const [interval, setBucket] = useState<Interval>('hour');
  const [split, setSplit] = useState<Split>('channel');
  // The window is fixed when a choice is made (or Refresh pressed), so the funnel, the split and
  // the error reasons cover the same range.
  const [asOf, setAsOf] = useState(0);
  const span = useMemo(() => spanOf(range, interval), [range, interval, app, asOf]);

  const stats = useLoad(() => api<Stats>(`/v1/stats?${qs({ ...span, interval })}`), [span]);
  const grouped = useLoad(() => api<Stats>(`/v1/stats?${qs({ ...span, interval, groupBy: split })}`), [span, split]);
  const errors = useLoad(() => api<StatsErrors>(`/v1/stats/errors?${qs(span)}`), [span]);
  const queues = useLoad(() => api<{ at: string; queues: QueueDepth[] }>('/v1/queues'), [app], 5000);
  const names = useLoad(() => (split === 'campaign' && grouped.data ? campaignNames(grouped.data.series) : Promise.resolve<Record<string, string>>({})), [grouped.data, split]);
  const label = (key: Stats['series'][number]['key']) =>
    key.campaign ? (names.data?.[key.campaign] ?? key.campaign) : key.campaign === null ? 'no campaign (transactional)' : keyLabel(key);

  const funnel = useMemo(() => (stats.data ? funnelLines(stats.data, ['sent', 'delivered', 'opened']) : undefined), [stats.data]);
  const invalid = useMemo(() => (stats.data ? funnelLines(stats.data, ['invalid', 'failed', 'expired']) : undefined), [stats.data]);
  const split$ = useMemo(() => (grouped.data ? align(grouped.data.series, 'sent', label) : undefined), [grouped.data, names.data]);
  const t = stats.data?.totals ?? {};

  return (
    <>
      <form class="toolbar" aria-label="Chart options" onSubmit={(e) => e.preventDefault()}>
        <Choice
          label="Range"
          id="range"
          value={range}
          options={Object.entries(RANGES).map(([k, v]) => [k, v.label] as const)}
          onChange={(v) => {
            setRange(v as Range);
            setBucket(RANGES[v as Range].buckets[0]!);
          }}
        />
        <Choice label="Buckets" id="buckets" value={interval} options={RANGES[range].buckets.map((b) => [b, BUCKET_LABELS[b]] as const)} onChange={(v) => setBucket(v as Interval)} />
        <button type="button" onClick={() => setAsOf(Date.now())}>
          Refresh
        </button>
      </form>

      <Section title="Funnel">
        <Failure error={stats.error} />
        <dl class="stats" aria-busy={stats.loading}>
          <Stat label="Sent" value={num(t.sent ?? 0)} testId="funnel-sent" />
          <Stat label="Delivered" value={num(t.delivered ?? 0)} testId="funnel-delivered" hint={`${pct(stats.data?.rates.delivered)} of sent`} />
          <Stat label="Opened" value={num(t.opened ?? 0)} testId="funnel-opened" hint={`${pct(stats.data?.rates.opened)} of delivered`} />
          <Stat label="Delivery rate" value={pct(stats.data?.rates.delivered)} testId="rate-delivered" />
          <Stat label="Open rate" value={pct(stats.data?.rates.opened)} testId="rate-opened" />
          <Stat label="Failed" value={num(t.failed ?? 0)} testId="funnel-failed" />
          <Stat label="Invalid tokens" value={num(t.invalid ?? 0)} testId="funnel-invalid" />
          <Stat label="Expired" value={num(t.expired ?? 0)} testId="funnel-expired" />
        </dl>
        {funnel && funnel.times.length > 0 ? <TimeChart title="Sent, delivered and opened per bucket" times={funnel.times} lines={funnel.lines} /> : null}
        {funnel && funnel.times.length === 0 ? <p class="muted">Nothing sent in this range.</p> : null}
      </Section>

      <Section title="Split">
        <Choice label="Split by" id="split" inline value={split} options={SPLITS.map((x) => [x, x] as const)} onChange={(v) => setSplit(v as Split)} />
        <Failure error={grouped.error} />
        {split$ && split$.times.length > 0 ? <TimeChart title={`Sent per ${split}`} times={split$.times} lines={split$.lines} /> : null}
        <div class="scroll">
          <table>
            <caption>Funnel per {split}</caption>
            <thead>
              <tr>
                <th scope="col">{split}</th>
                {(['sent', 'delivered', 'opened', 'failed', 'invalid', 'expired'] as const).map((f) => (
                  <th scope="col" class="n">
                    {f}
                  </th>
                ))}
                <th scope="col" class="n">
                  delivered / sent
                </th>
                <th scope="col" class="n">
                  opened / delivered
                </th>
              </tr>
            </thead>
            <tbody>
              {(grouped.data?.series ?? []).map((s) => {
                const c = s.totals ?? totalsOf(s.points);
                const name = keyLabel(s.key);
                return (
                  <tr>
                    <th scope="row">{s.key.campaign ? <a href={`#/campaigns/${encodeURIComponent(s.key.campaign)}`}>{label(s.key)}</a> : label(s.key)}</th>
                    {(['sent', 'delivered', 'opened', 'failed', 'invalid', 'expired'] as const).map((f) => (
                      <td class="n" data-testid={`split-${name}-${f}`}>
                        {num(c[f] ?? 0)}
                      </td>
                    ))}
                    <td class="n">{pct(rate(c.delivered, c.sent))}</td>
                    <td class="n">{pct(rate(c.opened, c.delivered))}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </Section>

      <div class="grid2">
        <Section title="Invalid tokens and failures">
          {invalid && invalid.times.length > 0 ? (
            <TimeChart title="Invalid tokens, failures and expiries per bucket" times={invalid.times} lines={invalid.lines} height={180} />
          ) : (
            <p class="muted">None in this range.</p>
          )}
        </Section>
        <Section title="Error reasons">
          <Failure error={errors.error} />
          <div class="scroll">
            <table>
              <caption>Top error reasons per channel</caption>
              <thead>
                <tr>
                  <th scope="col">channel</th>
                  <th scope="col">reason</th>
                  <th scope="col">outcome</th>
                  <th scope="col" class="n">
                    count
                  </th>
                </tr>
              </thead>
              <tbody>
                {(errors.data?.channels ?? []).flatMap((ch) =>
                  ch.reasons.map((e, i) => (
                    <tr>
                      {i === 0 ? (
                        <th scope="rowgroup" rowSpan={ch.reasons.length}>
                          {ch.channel} <span class="muted">({num(ch.total)})</span>
                        </th>
                      ) : null}
                      <td>
                        <code>{e.code}</code>
                      </td>
                      <td>
                        <span class={`badge ${e.status}`}>{e.status}</span>
                      </td>
                      <td class="n" data-testid={`error-${ch.channel}-${e.code}`}>
                        {num(e.count)}
                      </td>
                    </tr>
                  )),
                )}
                <EmptyRow show={errors.data?.channels.length === 0} cols={4}>
                  No errors in this range.
                </EmptyRow>
              </tbody>
            </table>
          </div>
        </Section>
      </div>

      <Section title="Queues">
        <Failure error={queues.error} />
        <div class="scroll">
          <table aria-describedby="queues-at">
            <caption>
              Jobs per queue, live <span id="queues-at" class="muted">(as of {queues.data ? new Date(queues.data.at).toLocaleTimeString() : '–'}, every 5 s)</span>
            </caption>
            <thead>
              <tr>
                <th scope="col">queue</th>
                <th scope="col" class="n">waiting</th>
                <th scope="col" class="n">active</th>
                <th scope="col" class="n">delayed</th>
                <th scope="col" class="n">failed</th>
              </tr>
            </thead>
            <tbody>
              {(queues.data?.queues ?? []).map((q) => (
                <tr>
                  <th scope="row">{q.name}</th>
                  <td class="n" data-testid={`queue-${q.name}-waiting`}>{num(q.waiting + q.prioritized)}</td>
                  <td class="n">{num(q.active)}</td>
                  <td class="n">{num(q.delayed)}</td>
                  <td class="n">{num(q.failed)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Section>
    </>
  );
}
