import { Queue, type JobsOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { CHANNELS, type Channel } from '../providers/types.js';

export const ROUTE_QUEUE = 'route';
/** Delayed checks that self-channel deliveries to online devices were acked (SELF_ACK_TIMEOUT). */
export const SELF_ACK_QUEUE = 'self-ack';

export interface RouteJob {
  appId: string;
  messageId: string;
}

export interface SendJob {
  appId: string;
  messageId: string;
  /** Delivery row ids (bigint as text), all of one message and one channel. */
  ids: string[];
}

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
export const SELF_ACK_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: { age: 600, count: 10_000 },
  removeOnFail: { age: 86_400 },
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000 },
};

/** The producer side of every queue, sharing one Redis connection. */
export class Queues {
  readonly connection: Redis;
  readonly route: Queue<RouteJob>;
  readonly selfAck: Queue<SelfAckJob>;
  private readonly sendQueues = new Map<Channel, Queue<SendJob>>();

  constructor(
    redis: RedisOptions,
    readonly prefix: string,
  ) {
    this.connection = new Redis({ ...redis, maxRetriesPerRequest: null });
    this.route = new Queue<RouteJob>(ROUTE_QUEUE, { connection: this.connection, prefix });
    this.selfAck = new Queue<SelfAckJob>(SELF_ACK_QUEUE, { connection: this.connection, prefix });
    for (const c of CHANNELS) this.sendQueues.set(c, new Queue<SendJob>(c, { connection: this.connection, prefix }));
  }

  send(channel: Channel): Queue<SendJob> {
    return this.sendQueues.get(channel)!;
  }

  all(): Queue[] {
    return [this.route, ...this.sendQueues.values(), this.selfAck] as Queue[];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
    this.connection.disconnect();
  }
}
