import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiFailure, session } from './api';
import { CampaignPage, CampaignList } from './pages/campaigns';
import { NewCampaign } from './pages/campaign-new';
import { MessageLookup } from './pages/message';
import { Overview } from './pages/overview';
import type { AppSummary, Me, Scope } from './types';
import { Choice, Failure } from './ui';
import './styles.css';

// Hash routes (#/overview, #/campaigns/<id>, #/messages/<id>): the server serves one file.
const route = () => location.hash.replace(/^#/, '');

function useRoute(): [string, (p: string) => void] {
  const [r, setR] = useState(route());
  useEffect(() => {
    const on = () => setR(route());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return [r, (p: string) => (location.hash = p)];
}

const can = (me: Me, scope: Scope) => me.kind === 'operator' || me.scopes.includes(scope) || me.scopes.includes('admin');

function Login({ onIn }: { onIn: (me: Me) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<ApiFailure>();
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const me = await api<Me>('/v1/me', { key: key.trim(), noApp: true });
      session.signIn(key.trim());
      onIn(me);
    } catch (err) {
      const f = err as ApiFailure;
      setError(
        f.status === 401
          ? new ApiFailure(401, f.code, 'This key was not accepted: it is unknown or revoked. App keys start with rk_, the operator token with adm_.')
          : f,
      );
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="login">
      <form class="card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Relay dashboard</h1>
        <p class="muted">Sign in with an app's API key, or the operator token to see every app. The key stays in this browser tab only.</p>
        <div class="field">
          <label for="key">API key</label>
          <input id="key" type="password" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} autoComplete="off" spellcheck={false} required aria-invalid={error ? true : undefined} aria-describedby={error ? 'login-error' : undefined} />
        </div>
        {error ? (
          <p id="login-error" class="error" role="alert">
            {error.message}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function AppPicker({ app, setApp }: { app: string | null; setApp: (a: string | null) => void }) {
  const [apps, setApps] = useState<AppSummary[]>();
  const [error, setError] = useState<ApiFailure>();
  useEffect(() => {
    api<{ items: AppSummary[] }>('/v1/apps', { noApp: true }).then(
      (r) => {
        setApps(r.items);
        if (!app && r.items[0]) setApp(r.items[0].id);
      },
      (e: ApiFailure) => setError(e),
    );
  }, []);
  if (error) return <Failure error={error} />;
  return (
    <Choice label="App" id="app-picker" inline value={app ?? ''} options={(apps ?? []).map((a) => [a.id, a.name === a.id ? a.id : `${a.name} (${a.id})`] as const)} onChange={(v) => setApp(v || null)} />
  );
}

function Shell({ me, signOut }: { me: Me; signOut: () => void }) {
  const [path, go] = useRoute();
  const [app, setAppState] = useState(session.app);
  const setApp = (a: string | null) => (session.setApp(a), setAppState(a));
  const parts = path.split('/').filter(Boolean);
  const nav = [
    { id: 'overview', label: 'Overview', ok: can(me, 'stats') },
    { id: 'campaigns', label: 'Campaigns', ok: can(me, 'campaigns') },
    { id: 'messages', label: 'Messages', ok: can(me, 'push') },
  ].filter((n) => n.ok);
  const section = parts[0] ?? nav[0]?.id ?? 'overview';
  const needsApp = me.kind === 'operator' && !app;

  let page;
  if (needsApp) page = <p class="muted">Create an app first (POST /v1/apps), then pick it above.</p>;
  else if (!nav.some((n) => n.id === section)) page = <p class="error" role="alert">This key has no scope for this page ({section}). Its scopes: {me.kind === 'key' ? me.scopes.join(', ') : 'all'}.</p>;
  else if (section === 'overview') page = <Overview app={app} key={app} />;
  else if (section === 'campaigns' && parts[1] === 'new') page = <NewCampaign go={go} key={app} />;
  else if (section === 'campaigns' && parts[1]) page = <CampaignPage id={decodeURIComponent(parts[1])} key={`${app}/${parts[1]}`} />;
  else if (section === 'campaigns') page = <CampaignList go={go} key={app} />;
  else page = <MessageLookup id={parts[1] ? decodeURIComponent(parts[1]) : undefined} go={go} key={`${app}/${parts[1] ?? ''}`} />;

  return (
    <>
      <header class="top">
        <strong class="brand">Relay</strong>
        <nav aria-label="Dashboard">
          {nav.map((n) => (
            <a href={`#/${n.id}`} aria-current={n.id === section ? 'page' : undefined}>
              {n.label}
            </a>
          ))}
          {me.kind === 'operator' ? (
            <a href="/admin/queues" target="_blank" rel="noopener" title="Bull Board: the browser asks for the operator token as password">
              Queues (Bull Board)
            </a>
          ) : null}
        </nav>
        <div class="who">
          {me.kind === 'operator' ? <AppPicker app={app} setApp={setApp} /> : <span class="muted">app {me.appId}</span>}
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        <h1 class="sr-only">{nav.find((n) => n.id === section)?.label ?? 'Relay'}</h1>
        {page}
      </main>
    </>
  );
}

function App() {
  const [me, setMe] = useState<Me | null>();
  const [error, setError] = useState<ApiFailure>();
  useEffect(() => {
    if (!session.key) return setMe(null);
    api<Me>('/v1/me', { noApp: true }).then(setMe, (e: ApiFailure) => {
      if (e.status === 401) session.signOut();
      else setError(e);
      setMe(null);
    });
  }, []);
  if (me === undefined) return <p aria-busy="true">Loading…</p>;
  if (me === null)
    return (
      <>
        <Failure error={error} />
        <Login onIn={setMe} />
      </>
    );
  return (
    <Shell
      me={me}
      signOut={() => {
        session.signOut();
        setMe(null);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
