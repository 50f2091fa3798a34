import { Queue, type JobsOptions } from 'bullmq';
import { createRedis, type RedisClient, type RedisConfig } from './redis.js';
import { CHANNELS, type Channel } from '../providers/channels.js';
import { FairShare } from './core/fair-share.js';
import { TxPressure } from './tx-pressure.js';

export const ROUTE_QUEUE = 'route';
/** Delayed checks that self-channel deliveries to online devices were acked (SELF_ACK_TIMEOUT). */
export const SELF_ACK_QUEUE = 'self-ack';

/** Delayed SMS top-ups (`options.fallback.sms`): one job per message, due when its window ends. */
export const SMS_FALLBACK_QUEUE = 'sms-fallback';

export interface SmsFallbackJob {
  appId: string;
  messageId: string;
}

/** Recalls (`DELETE /v1/messages/:id`): one job per message, walking its deliveries (workers/recall.ts). */
export const RECALL_QUEUE = 'recall';

export interface RecallJob {
  appId: string;
  messageId: string;
}

export interface RouteJob {
  appId: string;
  messageId: string;
}

export interface SendJob {
  appId: string;
  messageId: string;
  /** Delivery row ids (bigint as text), all of one message and one channel. */
  ids: string[];
  /**
   * Epoch ms until which the router leased these rows to this job at insert. Its first run inside
   * the lease reads the rows instead of claiming them: one write per delivery fewer.
   */
  leasedUntil?: number;
  /**
   * Queued by the reconciliation after Redis lost its jobs: the job that held these rows is gone,
   * so this one takes back the never-attempted ones whatever their lease, counting the attempt the
   * lost job may have made.
   */
  reclaimed?: true;
  /**
   * A transactional-lane job carries deliveries of several messages of one app (`ids` is all of
   * them): each message's ids, and its request when small enough to spare the worker a read.
   */
  parts?: SendPart[];
}

export interface SendPart {
  messageId: string;
  ids: string[];
  request?: unknown;
  /** The message's TTL end, epoch ms (with `request`). */
  expiresAt?: number;
}

/** The transactional lane's queue of a channel: single pushes, ahead of and apart from bulk sends. */
export const txQueueName = (channel: Channel) => `tx-${channel}`;

/**
 * How long the router leases new rows to their first send job. Long enough for a deep backlog
 * (a job that starts later claims its rows as usual); a crashed job takes its own rows back at
 * once, so only the sweeper waits this long.
 */
export const ROUTER_LEASE_MS = 5 * 60_000;

export interface SelfAckJob {
  appId: string;
  messageId: string;
  /** Self deliveries (bigint as text) sent to devices that were online: fall back if still un-acked. */
  ids: string[];
}

/** Job ids are deterministic so a re-run of the router after a crash enqueues nothing twice. */
export const sendJobId = (messageId: string, firstId: string, attempt = 0) => `${messageId}.${firstId}.${attempt}`;

const keep: JobsOptions = {
  removeOnComplete: { age: 3600, count: 50_000 },
  removeOnFail: { age: 7 * 86_400 },
};

export const ROUTE_JOB_OPTIONS: JobsOptions = { ...keep, attempts: 8, backoff: { type: 'exponential', delay: 1000 } };
/** Infrastructure failures (database down) retry the whole job; provider outcomes never throw. */
export const SEND_JOB_OPTIONS: JobsOptions = { ...keep, attempts: 12, backoff: { type: 'exponential', delay: 1000 } };
/** Kept a week: a completed job's id is what stops a re-added top-up from running twice. */
export const SMS_FALLBACK_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: { age: 7 * 86_400 },
  removeOnFail: { age: 7 * 86_400 },
  attempts: 10,
  backoff: { type: 'exponential', delay: 1000 },
};
/** One per message (jobId `recall.<id>`): a repeated DELETE adds nothing while the job is kept. */
export const RECALL_JOB_OPTIONS: JobsOptions = { ...keep, attempts: 8, backoff: { type: 'exponential', delay: 1000 } };
export const recallJobId = (messageId: string) => `recall.${messageId}`;
export const SELF_ACK_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: { age: 600, count: 10_000 },
  removeOnFail: { age: 86_400 },
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000 },
};

/**
 * Coalesces the jobs added in one turn of the event loop into one `addBulk` (one Redis round
 * trip), so a busy API does not pay a round trip per accepted request.
 */
export class BulkAdder<T> {
  private pending: { name: string; data: T; opts: JobsOptions; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  constructor(
    private readonly queue: Queue<T>,
    private readonly max = 1000,
  ) {}

  add(name: string, data: T, opts: JobsOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ name, data, opts, resolve, reject });
      if (this.pending.length >= this.max) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    (this.queue as unknown as Queue).addBulk(batch.map((b) => ({ name: b.name, data: b.data, opts: b.opts }))).then(
      () => batch.forEach((b) => b.resolve()),
      (err: unknown) => batch.forEach((b) => b.reject(err)),
    );
  }
}

/** The producer side of every queue, sharing one Redis connection. */
export class Queues {
  readonly connection: RedisClient;
  readonly route: Queue<RouteJob>;
  /** Route jobs from accepted requests, batched per event-loop turn. */
  readonly routeAdder: BulkAdder<RouteJob>;
  readonly selfAck: Queue<SelfAckJob>;
  readonly smsFallback: Queue<SmsFallbackJob>;
  readonly recall: Queue<RecallJob>;
  private readonly sendQueues = new Map<Channel, Queue<SendJob>>();
  private readonly txQueues = new Map<Channel, Queue<SendJob>>();
  /** Per-app priorities on the bulk send queues (core/fair-share.ts); unit: a default batch. */
  private readonly fair = new FairShare(500);
  private pipelinedConnection: RedisClient | undefined;
  private pressure: TxPressure | undefined;

  constructor(
    private readonly redis: RedisConfig,
    readonly prefix: string,
  ) {
    this.connection = createRedis(redis);
    this.route = new Queue<RouteJob>(ROUTE_QUEUE, { connection: this.connection, prefix });
    this.routeAdder = new BulkAdder(this.route);
    this.selfAck = new Queue<SelfAckJob>(SELF_ACK_QUEUE, { connection: this.connection, prefix });
    this.smsFallback = new Queue<SmsFallbackJob>(SMS_FALLBACK_QUEUE, { connection: this.connection, prefix });
    this.recall = new Queue<RecallJob>(RECALL_QUEUE, { connection: this.connection, prefix });
    for (const c of CHANNELS) this.sendQueues.set(c, new Queue<SendJob>(c, { connection: this.connection, prefix }));
    for (const c of CHANNELS) this.txQueues.set(c, new Queue<SendJob>(txQueueName(c), { connection: this.connection, prefix }));
  }

  /**
   * A second connection with ioredis auto-pipelining (https://github.com/redis/ioredis#autopipelining),
   * for the API's per-request commands (rate limits, device registrations): the commands of every
   * request in one event-loop turn leave in one write instead of a syscall each, which profiled at
   * a tenth of the API's CPU. BullMQ stays on the plain connection: auto-pipelining under Bull's
   * scripts was reported to break job state (https://github.com/taskforcesh/bullmq/issues/457,
   * https://github.com/OptimalBits/bull/issues/2276). Opened on first use.
   */
  get pipelined(): RedisClient {
    return (this.pipelinedConnection ??= createRedis(this.redis, { autoPipelining: true }));
  }

  /** Whether transactional work flows, shared by every process (src/tx-pressure.ts). */
  get txPressure(): TxPressure {
    return (this.pressure ??= new TxPressure(this.connection, this.prefix));
  }

  send(channel: Channel): Queue<SendJob> {
    return this.sendQueues.get(channel)!;
  }

  /** The channel's transactional lane (services/direct-push.ts). */
  sendTx(channel: Channel): Queue<SendJob> {
    return this.txQueues.get(channel)!;
  }

  /**
   * Sends deliveries a vendor refused over a daily quota over the app's `quotaFallback` channel
   * instead (self or FCM), whether the quota was met at send time or reported by a receipt.
   */
  async quotaFallback(appId: string, messageId: string, ids: string[], channel: Channel = 'self'): Promise<void> {
    if (ids.length === 0) return;
    await this.send(channel).add('send', { appId, messageId, ids }, { ...SEND_JOB_OPTIONS, jobId: `quota.${channel}.${messageId}.${ids[0]!}` });
  }

  /**
   * Queues one message's deliveries on a channel as send jobs of at most `batchSize` ids, in one
   * `addBulk`; `jobId` names each job by its first id, so re-adding the same rows adds nothing.
   * Each job's priority grows with its app's recent volume on the channel, so one app's campaign
   * does not stand in front of another app's sends (core/fair-share.ts).
   */
  async sendInBatches(
    channel: Channel,
    appId: string,
    messageId: string,
    ids: readonly string[],
    batchSize: number,
    jobId: (firstId: string) => string,
    leasedUntil?: number,
  ): Promise<void> {
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += batchSize) chunks.push(ids.slice(i, i + batchSize));
    const priorities = this.fair.priorities(`${appId}:${channel}`, chunks.map((c) => c.length));
    const jobs = chunks.map((chunk, k) => {
      const data: SendJob = { appId, messageId, ids: chunk, ...(leasedUntil !== undefined ? { leasedUntil } : {}) };
      return { name: 'send', data, opts: { ...SEND_JOB_OPTIONS, jobId: jobId(chunk[0]!), priority: priorities[k]! } };
    });
    if (jobs.length > 0) await this.send(channel).addBulk(jobs);
  }

  /**
   * The fair-share priority of one more bulk send job of `n` deliveries (a retry, a sweep): without
   * one a job lands in BullMQ's wait list, which is served before every prioritized job
   * (https://docs.bullmq.io/guide/jobs/prioritized), ahead of the other apps.
   */
  priorityFor(appId: string, channel: Channel, n: number): number {
    return this.fair.priorities(`${appId}:${channel}`, [n])[0]!;
  }

  all(): Queue[] {
    return [this.route, ...this.sendQueues.values(), ...this.txQueues.values(), this.selfAck, this.smsFallback, this.recall] as Queue[];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
    this.connection.disconnect();
    this.pipelinedConnection?.disconnect();
  }
}
