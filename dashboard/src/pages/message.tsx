import { useState } from 'preact/hooks';
import { api, qs } from '../api';
import { num, time } from '../format';
import { useLoad } from '../hooks';
import { STATUSES, type Delivery, type Message, type Page } from '../types';
import { Choice, CountsTable, EmptyRow, Failure, Pager, Section, useCursors } from '../ui';

const PAGE_SIZES = ['10', '50', '200'];
const CHANNELS = ['apns', 'fcm', 'self', 'huawei', 'xiaomi', 'oppo', 'vivo', 'honor', 'meizu', 'webpush', 'sms'];

export function MessageLookup({ id, go }: { id: string | undefined; go: (path: string) => void }) {
  const [draft, setDraft] = useState(id ?? '');
  return (
    <>
      <form
        class="toolbar"
        role="search"
        aria-label="Message lookup"
        onSubmit={(e) => {
          e.preventDefault();
          if (draft.trim()) go(`/messages/${encodeURIComponent(draft.trim())}`);
        }}
      >
        <div class="ctl">
          <label for="message-id">Message id</label>
          <input id="message-id" name="message" value={draft} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} placeholder="msg_…" class="id" autoComplete="off" spellcheck={false} required />
        </div>
        <button type="submit">Look up</button>
      </form>
      {id ? <MessageView id={id} key={id} /> : <p class="muted">Enter the id `POST /v1/push` answered (or a campaign run's message id).</p>}
    </>
  );
}

function MessageView({ id }: { id: string }) {
  const msg = useLoad(() => api<Message>(`/v1/messages/${encodeURIComponent(id)}`), [id]);
  const [status, setStatus] = useState('');
  const [channel, setChannel] = useState('');
  const [perPage, setPerPage] = useState('50');
  const paging = useCursors();
  const { cursor } = paging;
  const page = useLoad(
    () => api<Page<Delivery>>(`/v1/messages/${encodeURIComponent(id)}/deliveries?${qs({ status, channel, cursor, limit: perPage })}`),
    [id, status, channel, cursor, perPage],
  );
  const m = msg.data;
  if (msg.error) return <Failure error={msg.error} />;
  if (!m) return <p aria-busy="true">Loading…</p>;
  return (
    <>
      <Section title={`Message ${m.id}`} id="message">
        <dl class="stats">
          <div class="stat">
            <dt>State</dt>
            <dd data-testid="message-state">
              <span class={`badge ${m.state}`}>{m.state}</span>
            </dd>
          </div>
          <div class="stat">
            <dt>Recipients</dt>
            <dd data-testid="message-recipients">{num(m.recipients)}</dd>
          </div>
          <div class="stat">
            <dt>Created</dt>
            <dd class="small">{time(m.createdAt)}</dd>
          </div>
        </dl>
        <CountsTable
          caption="Deliveries per state and channel"
          first="channel"
          rows={[...Object.entries(m.byChannel).map(([name, counts]) => ({ name, counts })), { name: 'all', counts: m.counts }]}
        />
      </Section>
      <Section title="Per-token fates" id="fates">
        <form class="toolbar" aria-label="Filter deliveries" onSubmit={(e) => e.preventDefault()}>
          <Choice label="Status" id="status" value={status} options={[['', 'any'], ...STATUSES.map((x) => [x, x] as const)]} onChange={(v) => (setStatus(v), paging.reset())} />
          <Choice label="Channel" id="channel" value={channel} options={[['', 'any'], ...CHANNELS.map((x) => [x, x] as const)]} onChange={(v) => (setChannel(v), paging.reset())} />
          <Choice label="Per page" id="per-page" value={perPage} options={PAGE_SIZES.map((n) => [n, n] as const)} onChange={(v) => (setPerPage(v), paging.reset())} />
        </form>
        <Failure error={page.error} />
        <div class="scroll">
          <table aria-busy={page.loading} class="stack">
            <caption>
              Deliveries, page {paging.page} ({perPage} per page)
            </caption>
            <thead>
              <tr>
                <th scope="col">device</th>
                <th scope="col">channel</th>
                <th scope="col">token</th>
                <th scope="col">status</th>
                <th scope="col" class="n">attempts</th>
                <th scope="col">error</th>
                <th scope="col">updated</th>
              </tr>
            </thead>
            <tbody>
              {(page.data?.items ?? []).map((d) => (
                <tr>
                  <td data-label="device">{d.deviceId ?? '–'}</td>
                  <td data-label="channel">{d.channel ?? '–'}</td>
                  <td data-label="token">
                    <code>{d.token ?? '–'}</code>
                  </td>
                  <td data-label="status">
                    <span class={`badge ${d.status}`}>{d.status}</span>
                  </td>
                  <td class="n" data-label="attempts">{d.attempts}</td>
                  <td data-label="error">{d.error ? <code title={d.error.message}>{d.error.code}</code> : '–'}</td>
                  <td data-label="updated">{time(d.updatedAt)}</td>
                </tr>
              ))}
              <EmptyRow show={page.data?.items.length === 0} cols={7}>
                No deliveries match.
              </EmptyRow>
            </tbody>
          </table>
        </div>
        <Pager paging={paging} next={page.data?.next} label="Deliveries pages" prevLabel="Previous page" nextLabel="Next page" />
      </Section>
    </>
  );
}
