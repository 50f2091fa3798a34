/**
 * One valid request per route of the route table (`ROUTES`, src/api/define.ts), against a fixture
 * app, and what the owner gets for it. The tenant/scope matrix and the fuzzer both start from it;
 * both fail for a route that has no entry here, so a new route cannot skip them.
 */
import { randomBytes } from 'node:crypto';
import { SCOPES, type Scope } from '../../src/db/apps-repo.js';
import type { RouteDoc } from '../../src/api/define.js';
import { client, type TestRelay } from './harness.js';

export interface Fixture {
  /** The app every example acts on, and a second app whose keys must never reach it. */
  appA: string;
  appB: string;
  receiptSecretA: string;
  deviceA: string;
  /** A's device's FCM token (quarantined by ensure()). */
  tokenA: string;
  messageA: string;
  /** A campaign of A scheduled an hour ahead (pause, resume and cancel answer 200 in that order). */
  campaignA: string;
  /** A key of A made for each run of `DELETE /v1/apps/:app/keys/:key`. */
  spareKeyA: string;
  keys: {
    /** A key of A with exactly this scope. */
    only: Record<Scope, string>;
    /** A key of A with every scope but this one (and never admin, which implies them all). */
    without: Record<Scope, string>;
    /** A key of B with every scope. */
    otherApp: string;
    /** A key of A with every scope, revoked. */
    revoked: string;
  };
  operator: string;
  devicePasswordA: string;
  /** Re-creates what a destructive example removed; idempotent. */
  ensure(): Promise<void>;
}

export interface Request {
  params?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Example {
  /** The request, valid for the owner. */
  req(f: Fixture): Request;
  /** What an authorised caller of app A gets. */
  ok: number;
  /**
   * What B's key gets. Default 404: the resource is A's and B cannot even learn it exists.
   * Routes that act on the caller's own app (create, list) answer B like any owner.
   */
  otherApp?: number;
  /** What the operator token gets, where the route's auth does not say (a view of every app). */
  operator?: number;
  /** Consumes its target (besides DELETEs): the matrix re-creates the fixture before each call. */
  destructive?: boolean;
  /** The scope a key needs, for `device` routes (authenticated by the device password or a key). */
  scope?: Scope;
}

export const routeKey = (r: Pick<RouteDoc, 'method' | 'path'>) => `${r.method.toUpperCase()} ${r.path}`;

const rand = () => randomBytes(4).toString('hex');

export const EXAMPLES: Record<string, Example> = {
  'POST /v1/apps': { ok: 201, req: () => ({ body: { name: 'matrix app' } }) },
  'GET /v1/apps': { ok: 200, req: () => ({}) },
  'PUT /v1/apps/:app/settings': { ok: 200, req: (f) => ({ params: { app: f.appA }, body: { androidStrategy: 'self-first' } }) },
  'POST /v1/apps/:app/keys': { ok: 201, req: (f) => ({ params: { app: f.appA }, body: { name: 'k', scopes: ['push'] } }) },
  'GET /v1/apps/:app/keys': { ok: 200, req: (f) => ({ params: { app: f.appA } }) },
  'DELETE /v1/apps/:app/keys/:key': { ok: 204, req: (f) => ({ params: { app: f.appA, key: f.spareKeyA } }) },
  'PUT /v1/apps/:app/credentials/:provider': { ok: 200, req: (f) => ({ params: { app: f.appA, provider: 'webpush' }, body: { subject: 'mailto:ops@example.com' } }) },
  'GET /v1/apps/:app/credentials': { ok: 200, req: (f) => ({ params: { app: f.appA } }) },
  'DELETE /v1/apps/:app/credentials/:provider': { ok: 204, req: (f) => ({ params: { app: f.appA, provider: 'webpush' } }) },
  'PUT /v1/devices/:id': {
    ok: 200,
    // B registering the same id creates B's own device: ids are per app.
    otherApp: 200,
    req: (f) => ({ params: { id: f.deviceA }, body: { platform: 'android', tokens: { fcm: f.tokenA }, tags: ['t'] } }),
  },
  'GET /v1/devices/:id': { ok: 200, req: (f) => ({ params: { id: f.deviceA } }) },
  'DELETE /v1/devices/:id': { ok: 204, req: (f) => ({ params: { id: f.deviceA } }) },
  'POST /v1/devices/:id/credentials/rotate': { ok: 200, req: (f) => ({ params: { id: f.deviceA } }) },
  'GET /v1/tokens': { ok: 200, req: (f) => ({ query: { app: f.appA, channel: 'fcm', limit: '10' } }) },
  'POST /v1/devices/:id/tokens/:channel/restore': { ok: 200, destructive: true, req: (f) => ({ params: { id: f.deviceA, channel: 'fcm' }, query: { app: f.appA } }) },
  'GET /v1/devices/:id/inbox': { ok: 200, scope: 'devices', req: (f) => ({ params: { id: f.deviceA }, query: { after: '0', limit: '5' } }) },
  'POST /v1/events': {
    ok: 200,
    scope: 'push',
    // B's report names A's message and device: accepted as B's own (nothing of B matches), applied to nothing of A.
    otherApp: 200,
    req: (f) => ({ body: { deviceId: f.deviceA, messageId: f.messageA, event: 'opened' } }),
  },
  'POST /v1/push': {
    ok: 202,
    otherApp: 202,
    req: () => ({ body: { to: { devices: ['nobody'] }, notification: { title: 'hi', body: 'there' } }, headers: { 'idempotency-key': rand() } }),
  },
  'GET /v1/messages/:id': { ok: 200, req: (f) => ({ params: { id: f.messageA } }) },
  'GET /v1/messages/:id/deliveries': { ok: 200, req: (f) => ({ params: { id: f.messageA }, query: { limit: '10' } }) },
  'DELETE /v1/messages/:id': { ok: 200, req: (f) => ({ params: { id: f.messageA } }) },
  'GET /v1/messages/:id/recall': { ok: 200, req: (f) => ({ params: { id: f.messageA }, query: { limit: '10' } }) },
  // Dead letters act on the caller's own app: B lists and replays its own (none of A's).
  'GET /v1/deliveries': { ok: 200, otherApp: 200, req: () => ({ query: { status: 'failed,expired', limit: '10' } }) },
  'POST /v1/deliveries/replay': { ok: 200, otherApp: 200, req: () => ({ body: { ids: ['1'] } }) },
  'GET /v1/stats': { ok: 200, otherApp: 200, req: () => ({ query: { interval: 'hour', groupBy: 'channel' } }) },
  'GET /v1/stats/errors': { ok: 200, otherApp: 200, req: () => ({}) },
  // The queues are shared by every app; the operator reads them too (the dashboard's overview).
  'GET /v1/queues': { ok: 200, otherApp: 200, operator: 200, req: () => ({}) },
  'GET /v1/me': { ok: 200, otherApp: 200, req: () => ({}) },
  'POST /v1/campaigns/preview': { ok: 200, otherApp: 200, req: () => ({ body: { audience: { platforms: ['android'] } } }) },
  'POST /v1/campaigns': { ok: 201, otherApp: 201, req: () => ({ body: campaignBody() }) },
  'GET /v1/campaigns': { ok: 200, otherApp: 200, req: () => ({ query: { limit: '5' } }) },
  'GET /v1/campaigns/:id': { ok: 200, req: (f) => ({ params: { id: f.campaignA } }) },
  'POST /v1/campaigns/:id/pause': { ok: 200, req: (f) => ({ params: { id: f.campaignA } }) },
  'POST /v1/campaigns/:id/resume': { ok: 200, req: (f) => ({ params: { id: f.campaignA } }) },
  'POST /v1/campaigns/:id/cancel': { ok: 200, req: (f) => ({ params: { id: f.campaignA } }) },
  'POST /v1/receipts/:provider/:app': {
    ok: 200,
    otherApp: 200,
    req: (f) => ({ params: { provider: 'huawei', app: f.appA }, query: { secret: f.receiptSecretA }, body: { statuses: [{ token: 'unknown', status: 2 }] } }),
  },
};

/** A campaign to A's device, an hour ahead: nothing is sent while the matrix runs. */
function campaignBody() {
  return { name: 'matrix', audience: { platforms: ['android'] }, notification: { title: 'hi', body: 'there' }, schedule: { at: new Date(Date.now() + 3_600_000).toISOString() } };
}

/** The URL path of a route with its params filled in. */
export function urlOf(path: string, req: Request): string {
  const filled = path.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(req.params?.[name] ?? `missing-${name}`));
  const q = new URLSearchParams(req.query ?? {}).toString();
  return q ? `${filled}?${q}` : filled;
}

/** Creates apps A and B, keys for every scope combination, a device, a quarantined token and a message. */
export async function createFixture(t: TestRelay): Promise<Fixture> {
  const op = client(t.base, t.adminToken);
  const must = async (p: Promise<{ status: number; body: any }>, status: number) => {
    const r = await p;
    if (r.status !== status) throw new Error(`fixture: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const appA = `mx_a_${rand()}`;
  const appB = `mx_b_${rand()}`;
  await must(op('POST', '/v1/apps', { id: appA, name: 'A' }), 201);
  await must(op('POST', '/v1/apps', { id: appB, name: 'B' }), 201);
  const key = async (app: string, scopes: Scope[]) => (await must(op('POST', `/v1/apps/${app}/keys`, { scopes }), 201)) as { id: string; key: string };
  const only = {} as Record<Scope, string>;
  const without = {} as Record<Scope, string>;
  for (const s of SCOPES) {
    only[s] = (await key(appA, [s])).key;
    without[s] = (await key(appA, SCOPES.filter((x) => x !== s && x !== 'admin'))).key;
  }
  const otherApp = (await key(appB, [...SCOPES])).key;
  const revoked = await key(appA, [...SCOPES]);
  await must(op('DELETE', `/v1/apps/${appA}/keys/${revoked.id}`), 204);
  const receiptSecretA = (await t.relay.ctx.repos.apps.receiptSecret(appA))!;

  const admin = client(t.base, only.admin);
  const deviceA = `dev-a-${rand()}`;
  const tokenA = `fcm-token-of-a-${rand()}-${'x'.repeat(40)}`;
  const f: Fixture = {
    appA,
    appB,
    receiptSecretA,
    deviceA,
    tokenA,
    messageA: '',
    campaignA: '',
    spareKeyA: '',
    keys: { only, without, otherApp, revoked: revoked.key },
    operator: t.adminToken,
    devicePasswordA: '',
    async ensure() {
      // B may register a device of the same id (ids are per app): it must not stand in for A's.
      await t.relay.ctx.db.deleteFrom('devices').where('app_id', '=', appB).execute();
      const d = await must(admin('PUT', `/v1/devices/${deviceA}`, { platform: 'android', tokens: { fcm: tokenA } }), 200);
      f.devicePasswordA = d.self.password;
      await t.relay.ctx.db
        .updateTable('device_tokens')
        .set({ state: 'invalid', invalid_reason: 'Unregistered', invalid_at: new Date() })
        .where('app_id', '=', appA)
        .where('device_id', '=', deviceA)
        .execute();
      await must(admin('PUT', `/v1/apps/${appA}/credentials/webpush`, { subject: 'mailto:a@example.com' }), 200);
      f.spareKeyA = (await key(appA, ['push'])).id;
    },
  };
  await f.ensure();
  f.messageA = (await must(admin('POST', '/v1/push', { to: { devices: [deviceA] }, data: { k: 'v' }, options: { sendAt: new Date(Date.now() + 3_600_000).toISOString() } }), 202)).id;
  f.campaignA = (await must(admin('POST', '/v1/campaigns', campaignBody()), 201)).id;
  return f;
}
