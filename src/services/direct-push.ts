import type { Logger } from 'pino';
import type { Channel } from '../../providers/types.js';
import type { PresenceLookup } from '../../workers/route.js';
import type { PushRequest } from '../core/push-request.js';
import type { Config } from '../config.js';
import type { DirectDevice, DirectPushRepo, RoutedMessage } from '../db/direct-push-repo.js';
import type { NewDeliveryRow } from '../db/deliveries-repo.js';
import { SEND_JOB_OPTIONS, type Queues, type SendJob, type SendPart } from '../queues.js';
import { deviceRow, tokenRow } from './route-rows.js';

/** Named devices, or users, in one request that are still routed at accept time. */
export const DIRECT_MAX_DEVICES = 100;
export const DIRECT_MAX_USERS = 20;
/** Requests stored per statement; more wait for the next turn. */
const MAX_BATCH = 1000;
/** A request this small travels in the send job, so the worker need not read the message back. */
const INLINE_REQUEST_BYTES = 4096;
/**
 * The lease of new rows to their send job: past LEASE_MARGIN_MS (workers/send.ts) so the job's
 * first run only reads them, short so that rows whose job was never queued (the process died
 * between the insert and the queue) are swept soon.
 */
export const DIRECT_LEASE_MS = 90_000;

/** A push small enough to route while the request waits: named devices or users, or a raw token. */
export function isDirect(request: PushRequest, scheduled: boolean): boolean {
  if (scheduled) return false;
  const to = request.to;
  return Boolean(to.token || (to.devices && to.devices.length <= DIRECT_MAX_DEVICES) || (to.users && to.users.length <= DIRECT_MAX_USERS));
}

export interface DirectMessage {
  id: string;
  appId: string;
  request: PushRequest;
  expiresAt: Date;
}

interface Waiting {
  msg: DirectMessage;
  resolve: (recipients: number) => void;
  reject: (err: unknown) => void;
}

/**
 * The transactional path: the single pushes accepted in one event-loop turn are routed together
 * (group commit). One statement reads every named device, raw-token quarantine and app routing
 * setting they need, one statement stores their messages (already `routed`) and deliveries, and
 * one `addBulk` queues one send job per app and channel on the channel's transactional lane.
 * A fan-out's route job costs about eight round trips per message; this costs three per turn.
 */
export class DirectPush {
  private waiting: Waiting[] = [];
  private scheduled = false;

  constructor(
    private readonly config: Config,
    private readonly repo: DirectPushRepo,
    private readonly queues: Queues,
    private readonly presence: PresenceLookup,
    private readonly logger?: Logger,
  ) {}

  /** Stores and queues one direct push; resolves with its recipient count. */
  accept(msg: DirectMessage): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ msg, resolve, reject });
      if (this.waiting.length >= MAX_BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.waiting;
    this.waiting = [];
    if (batch.length === 0) return;
    this.store(batch.map((w) => w.msg)).then(
      (recipients) => batch.forEach((w, i) => w.resolve(recipients[i]!)),
      (err: unknown) => batch.forEach((w) => w.reject(err)),
    );
  }

  private async store(msgs: DirectMessage[]): Promise<number[]> {
    const t0 = performance.now();
    const found = await this.repo.lookup({
      devices: msgs.flatMap((m) => (m.request.to.devices ?? []).map((id) => ({ appId: m.appId, id }))),
      users: msgs.flatMap((m) => (m.request.to.users ?? []).map((userId) => ({ appId: m.appId, userId }))),
      tokens: msgs.flatMap((m) => (m.request.to.token ? [{ appId: m.appId, channel: m.request.to.token.channel, token: m.request.to.token.value }] : [])),
      apps: [...new Set(msgs.map((m) => m.appId))],
    });
    const byId = new Map<string, DirectDevice>();
    const byUser = new Map<string, DirectDevice[]>();
    for (const d of found.devices) {
      byId.set(`${d.appId} ${d.id}`, d);
      if (d.userId !== null) byUser.set(`${d.appId} ${d.userId}`, [...(byUser.get(`${d.appId} ${d.userId}`) ?? []), d]);
    }
    const online = await this.online(found.devices);

    const routed: RoutedMessage[] = msgs.map((m) => {
      const app = found.apps.get(m.appId);
      const configured = new Set(app?.configured ?? []);
      const to = m.request.to;
      let rows: NewDeliveryRow[];
      if (to.token) {
        rows = [tokenRow(to.token.channel, to.token.value, found.quarantined.has(`${m.appId} ${to.token.channel} ${to.token.value}`), configured)];
      } else {
        const devices = new Map<string, DirectDevice>();
        for (const id of to.devices ?? []) {
          const d = byId.get(`${m.appId} ${id}`);
          if (d) devices.set(d.id, d);
        }
        for (const u of to.users ?? []) for (const d of byUser.get(`${m.appId} ${u}`) ?? []) devices.set(d.id, d);
        const routing = { configured, ...(app?.strategy ? { strategy: app.strategy } : {}), ...(m.request.options.channels ? { pinned: m.request.options.channels } : {}) };
        rows = [...devices.values()].map((d) => deviceRow(d, online.has(`${d.appId} ${d.id}`), routing));
      }
      return { id: m.id, appId: m.appId, request: m.request, expiresAt: m.expiresAt, rows };
    });

    const leasedUntil = Date.now() + DIRECT_LEASE_MS;
    const t1 = performance.now();
    const queued = await this.repo.insertRouted(routed, new Date(leasedUntil));
    const t2 = performance.now();
    await this.enqueue(routed, queued, leasedUntil);
    const ms = (a: number, b: number) => Math.round(b - a);
    this.logger?.debug({ n: msgs.length, lookupMs: ms(t0, t1), insertMs: ms(t1, t2), queueMs: ms(t2, performance.now()) }, 'direct pushes stored');
    return routed.map((m) => new Set(m.rows.map((r) => r.deviceId)).size);
  }

  /** Presence of the devices that can take the self channel (never iOS), one lookup per app. */
  private async online(devices: DirectDevice[]): Promise<Set<string>> {
    const byApp = new Map<string, string[]>();
    for (const d of devices) if (d.platform !== 'ios') byApp.set(d.appId, [...(byApp.get(d.appId) ?? []), d.id]);
    const out = new Set<string>();
    await Promise.all(
      [...byApp].map(async ([appId, ids]) => {
        for (const id of await this.presence(appId, ids)) out.add(`${appId} ${id}`);
      }),
    );
    return out;
  }

  /** One send job per app and channel, at most SEND_BATCH_SIZE deliveries each, in one addBulk per channel. */
  private async enqueue(routed: RoutedMessage[], queued: [string, string, string][], leasedUntil: number): Promise<void> {
    const messages = new Map(routed.map((m) => [m.id, m]));
    const jobs = new Map<string, { channel: Channel; appId: string; parts: Map<string, SendPart>; n: number }[]>();
    for (const [messageId, channel, id] of queued) {
      const m = messages.get(messageId)!;
      const key = `${m.appId} ${channel}`;
      const list = jobs.get(key) ?? [];
      jobs.set(key, list);
      let job = list[list.length - 1];
      if (!job || job.n >= this.config.SEND_BATCH_SIZE) list.push((job = { channel: channel as Channel, appId: m.appId, parts: new Map(), n: 0 }));
      let part = job.parts.get(messageId);
      if (!part) {
        const json = JSON.stringify(m.request);
        part = { messageId, ids: [], ...(json.length <= INLINE_REQUEST_BYTES ? { request: m.request, expiresAt: m.expiresAt.getTime() } : {}) };
        job.parts.set(messageId, part);
      }
      part.ids.push(id);
      job.n++;
    }
    const byChannel = new Map<Channel, { name: string; data: SendJob; opts: typeof SEND_JOB_OPTIONS }[]>();
    for (const list of jobs.values()) {
      for (const j of list) {
        const parts = [...j.parts.values()];
        const first = parts[0]!;
        const data: SendJob = { appId: j.appId, messageId: first.messageId, ids: parts.flatMap((p) => p.ids), leasedUntil, parts };
        const bulk = byChannel.get(j.channel) ?? [];
        bulk.push({ name: 'send', data, opts: { ...SEND_JOB_OPTIONS, jobId: `tx.${first.messageId}.${first.ids[0]!}` } });
        byChannel.set(j.channel, bulk);
      }
    }
    await Promise.all([...byChannel].map(([channel, bulk]) => this.queues.sendTx(channel).addBulk(bulk)));
  }
}
