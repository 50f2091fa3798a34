import { useState } from 'preact/hooks';
import { api, qs } from '../api';
import { num, time } from '../format';
import { useLoad } from '../hooks';
import { STATUSES, type Delivery, type Message, type Page } from '../types';
import { CountsTable, Failure, Section } from '../ui';

const CHANNELS = ['apns', 'fcm', 'self', 'huawei', 'xiaomi', 'oppo', 'vivo', 'honor', 'meizu', 'webpush'];

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
        <label>
          Message id
          <input name="message" value={draft} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} placeholder="msg_…" class="id" autoComplete="off" spellcheck={false} required />
        </label>
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
  // Cursors of the pages before this one, for "Previous"; the API pages forward only.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const page = useLoad(
    () => api<Page<Delivery>>(`/v1/messages/${encodeURIComponent(id)}/deliveries?${qs({ status, channel, cursor, limit: 50 })}`),
    [id, status, channel, cursor],
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
          <label>
            Status
            <select value={status} onChange={(e) => (setStatus((e.target as HTMLSelectElement).value), setCursors([]))}>
              <option value="">any</option>
              {STATUSES.map((s) => (
                <option value={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            Channel
            <select value={channel} onChange={(e) => (setChannel((e.target as HTMLSelectElement).value), setCursors([]))}>
              <option value="">any</option>
              {CHANNELS.map((c) => (
                <option value={c}>{c}</option>
              ))}
            </select>
          </label>
        </form>
        <Failure error={page.error} />
        <div class="scroll">
          <table aria-busy={page.loading}>
            <caption>
              Deliveries, page {cursors.length + 1} (50 per page)
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
                  <td>{d.deviceId ?? '–'}</td>
                  <td>{d.channel ?? '–'}</td>
                  <td>
                    <code>{d.token ?? '–'}</code>
                  </td>
                  <td>
                    <span class={`badge ${d.status}`}>{d.status}</span>
                  </td>
                  <td class="n">{d.attempts}</td>
                  <td>{d.error ? <code title={d.error.message}>{d.error.code}</code> : '–'}</td>
                  <td>{time(d.updatedAt)}</td>
                </tr>
              ))}
              {page.data && page.data.items.length === 0 ? (
                <tr>
                  <td colSpan={7} class="muted">
                    No deliveries match.
                  </td>
                </tr>
              ) : null}
            </tbody>
          </table>
        </div>
        <nav class="pager" aria-label="Deliveries pages">
          <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
            Previous page
          </button>
          <button type="button" disabled={!page.data?.next} onClick={() => page.data?.next && setCursors([...cursors, page.data.next])}>
            Next page
          </button>
        </nav>
      </Section>
    </>
  );
}
