import { useState } from 'preact/hooks';
import type { ApiFailure} from '../api';
import { api, qs } from '../api';
import { num, pct, reached, time } from '../format';
import { useLoad } from '../hooks';
import type { Campaign, CampaignState, Page } from '../types';
import { CountsTable, EmptyRow, Failure, Pager, Section, useCursors } from '../ui';

const progress = (c: Campaign) => (c.audienceSize ? Math.min(1, c.dispatched / c.audienceSize) : c.state === 'completed' ? 1 : 0);

export function CampaignList({ go }: { go: (path: string) => void }) {
  const paging = useCursors();
  const { cursor } = paging;
  const list = useLoad(() => api<Page<Campaign>>(`/v1/campaigns?${qs({ cursor, limit: 25 })}`), [cursor], 10_000);
  return (
    <Section title="Campaigns">
      <p>
        <a class="button" href="#/campaigns/new" onClick={(e) => (e.preventDefault(), go('/campaigns/new'))}>
          New campaign
        </a>
      </p>
      <Failure error={list.error} />
      <div class="scroll">
        <table aria-busy={list.loading} class="stack">
          <caption>Newest first</caption>
          <thead>
            <tr>
              <th scope="col">name</th>
              <th scope="col">state</th>
              <th scope="col">progress</th>
              <th scope="col" class="n">sent</th>
              <th scope="col" class="n">delivery rate</th>
              <th scope="col" class="n">open rate</th>
              <th scope="col">created</th>
            </tr>
          </thead>
          <tbody>
            {(list.data?.items ?? []).map((c) => (
              <tr>
                <th scope="row">
                  <a href={`#/campaigns/${encodeURIComponent(c.id)}`}>{c.name}</a>
                </th>
                <td data-label="state" data-testid={`campaign-${c.id}-state`}>
                  <span class={`badge ${c.state}`}>{c.state}</span>
                </td>
                <td data-label="progress">
                  <progress max={1} value={progress(c)} aria-label={`${c.name}: ${num(c.dispatched)} of ${num(c.audienceSize)} dispatched`} />{' '}
                  <span class="muted" data-testid={`campaign-${c.id}-progress`}>
                    {num(c.dispatched)} / {num(c.audienceSize)}
                  </span>
                </td>
                <td class="n" data-label="sent" data-testid={`campaign-${c.id}-sent`}>{num(reached(c.counts))}</td>
                <td class="n" data-label="delivery rate" data-testid={`campaign-${c.id}-rate-delivered`}>{pct(c.rates.delivered)}</td>
                <td class="n" data-label="open rate" data-testid={`campaign-${c.id}-rate-opened`}>{pct(c.rates.opened)}</td>
                <td data-label="created">{time(c.createdAt)}</td>
              </tr>
            ))}
            <EmptyRow show={list.data?.items.length === 0} cols={7}>
              No campaigns yet.
            </EmptyRow>
          </tbody>
        </table>
      </div>
      <Pager paging={paging} next={list.data?.next} label="Campaign pages" prevLabel="Newer" nextLabel="Older" />
    </Section>
  );
}

const ACTIONS: { action: 'pause' | 'resume' | 'cancel'; label: string; allowed: CampaignState[] }[] = [
  { action: 'pause', label: 'Pause', allowed: ['scheduled', 'running'] },
  { action: 'resume', label: 'Resume', allowed: ['paused'] },
  { action: 'cancel', label: 'Cancel', allowed: ['draft', 'scheduled', 'running', 'paused'] },
];

export function CampaignPage({ id }: { id: string }) {
  const c = useLoad(() => api<Campaign>(`/v1/campaigns/${encodeURIComponent(id)}`), [id], 5000);
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ApiFailure>();
  const [said, setSaid] = useState('');

  async function act(action: 'pause' | 'resume' | 'cancel') {
    if (action === 'cancel' && !confirm('Cancel this campaign? What was not dispatched ends cancelled.')) return;
    setBusy(true);
    setFailure(undefined);
    try {
      const res = await api<Partial<Campaign>>(`/v1/campaigns/${encodeURIComponent(id)}/${action}`, { method: 'POST', body: {} });
      setSaid(`Campaign ${res?.state ?? 'updated'}.`);
      c.reload();
    } catch (e) {
      setFailure(e as ApiFailure);
    } finally {
      setBusy(false);
    }
  }

  if (c.error && !c.data) return <Failure error={c.error} />;
  const d = c.data;
  if (!d) return <p aria-busy="true">Loading…</p>;
  return (
    <>
      <Section title={d.name} id="campaign">
        <dl class="stats">
          <div class="stat">
            <dt>State</dt>
            <dd data-testid="campaign-state">
              <span class={`badge ${d.state}`}>{d.state}</span>
            </dd>
          </div>
          <div class="stat">
            <dt>Dispatched</dt>
            <dd class="small" data-testid="campaign-dispatched">
              {num(d.dispatched)} / {num(d.audienceSize)}
            </dd>
          </div>
          <div class="stat">
            <dt>Delivery rate</dt>
            <dd data-testid="campaign-rate-delivered">{pct(d.rates.delivered)}</dd>
          </div>
          <div class="stat">
            <dt>Open rate</dt>
            <dd data-testid="campaign-rate-opened">{pct(d.rates.opened)}</dd>
          </div>
          {Object.entries(d.skipped ?? {}).map(([k, v]) => (
            <div class="stat">
              <dt>Skipped: {k}</dt>
              <dd>{num(v)}</dd>
            </div>
          ))}
        </dl>
        <progress max={1} value={progress(d)} aria-label="Dispatch progress" class="wide" />
        <div class="actions" role="group" aria-label="Campaign controls">
          {ACTIONS.map((a) => (
            <button type="button" class={a.action === 'cancel' ? 'danger' : ''} disabled={busy || !a.allowed.includes(d.state)} onClick={() => act(a.action)}>
              {a.label}
            </button>
          ))}
          <span role="status" class="muted">
            {said}
          </span>
        </div>
        <Failure error={failure} />
        <p class="muted">
          {d.id} · created {time(d.createdAt)}
          {d.nextRunAt ? ` · next run ${time(d.nextRunAt)}` : ''}
        </p>
      </Section>
      <Section title="Variants">
        <CountsTable
          caption="Deliveries per variant"
          first="variant"
          rows={[
            ...(d.variants ?? []).map((v) => ({ name: v.name, counts: v.counts ?? {}, rate: v.rates?.delivered })),
            { name: 'all', counts: d.counts, rate: d.rates.delivered },
          ]}
        />
        {(d.variants ?? []).length > 0 ? (
          <div class="scroll">
            <table>
              <caption>Rates per variant</caption>
              <thead>
                <tr>
                  <th scope="col">variant</th>
                  <th scope="col" class="n">dispatched</th>
                  <th scope="col" class="n">delivered / sent</th>
                  <th scope="col" class="n">opened / delivered</th>
                </tr>
              </thead>
              <tbody>
                {(d.variants ?? []).map((v) => (
                  <tr>
                    <th scope="row">{v.name}</th>
                    <td class="n" data-testid={`variant-${v.name}-dispatched`}>{num(v.dispatched)}</td>
                    <td class="n" data-testid={`variant-${v.name}-rate-delivered`}>{pct(v.rates?.delivered)}</td>
                    <td class="n" data-testid={`variant-${v.name}-rate-opened`}>{pct(v.rates?.opened)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
      {(d.runs ?? []).length > 0 ? (
        <Section title="Runs">
          <ul>
            {(d.runs ?? []).map((r) => (
              <li>
                <a href={`#/messages/${encodeURIComponent(r.messageId)}`}>{r.messageId}</a> <span class="muted">started {time(r.startedAt)}</span>
              </li>
            ))}
          </ul>
        </Section>
      ) : null}
    </>
  );
}
