import { createRedis, type RedisClient, type RedisConfig } from '../redis.js';
import type { Logger } from 'pino';

/** One message for many devices of one app on one node: the batch's content travels once. */
export interface BusPush {
  t: 'push';
  appId: string;
  id: string;
  payload: Record<string, unknown>;
  expiresAt: number;
  /** [deviceId, seq] pairs. */
  to: [string, number][];
  /** Forwarded by a node that no longer held the device (at most once). */
  hop?: number;
}

/** Close the device's session here: it connected to `by` since. */
export interface BusKick {
  t: 'kick';
  appId: string;
  deviceId: string;
  by: string;
}

/** Withdraw a message from these devices (recall). */
export interface BusRevoke {
  t: 'revoke';
  appId: string;
  id: string;
  to: [string, number][];
}

/** Close the device's session wherever it is: its password was revoked or rotated (sent to every node). */
export interface BusClose {
  t: 'close';
  appId: string;
  deviceId: string;
}

export type BusMessage = BusPush | BusKick | BusRevoke | BusClose;

export const nodeChannel = (prefix: string, node: string) => `${prefix}:gw:${node}`;
/** Every gateway node listens here too, for what must reach a device wherever it is connected. */
export const allNodesChannel = (prefix: string) => `${prefix}:gw-all`;

/**
 * The producer side of the gateway bus: Redis pub/sub, one channel per gateway node. Pub/sub is
 * fire-and-forget, which is enough here: PostgreSQL holds every pending message, and a node that
 * missed a publish hands the message out on the device's next connect.
 */
export class BusPublisher {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /** Publishes to every gateway node (rare: credential changes). */
  async broadcast(msg: BusMessage): Promise<void> {
    await this.redis.publish(allNodesChannel(this.prefix), JSON.stringify(msg));
  }

  /**
   * Publishes every message in one pipelined round trip. Returns, per message, how many nodes
   * received it (0: the node is gone).
   */
  async publish(batch: readonly { node: string; msg: BusMessage }[]): Promise<number[]> {
    if (batch.length === 0) return [];
    const p = this.redis.pipeline();
    for (const { node, msg } of batch) p.publish(nodeChannel(this.prefix, node), JSON.stringify(msg));
    const res = (await p.exec()) ?? [];
    return res.map(([err, n]) => {
      if (err) throw err;
      return Number(n);
    });
  }
}

/** A gateway node's subscription to its own channel, on a connection of its own. */
export class BusSubscriber {
  private readonly redis: RedisClient;
  private readonly channel: string;
  private readonly everyone: string;

  constructor(
    options: RedisConfig,
    prefix: string,
    node: string,
    private readonly onMessage: (msg: BusMessage) => void,
    private readonly logger: Logger,
  ) {
    this.channel = nodeChannel(prefix, node);
    this.everyone = allNodesChannel(prefix);
    this.redis = createRedis(options);
    this.redis.on('error', (err) => this.logger.warn({ err: err.message }, 'gateway bus connection error'));
    this.redis.on('message', (_channel: string, text: string) => {
      let msg: BusMessage;
      try {
        msg = JSON.parse(text) as BusMessage;
      } catch {
        this.logger.warn('gateway bus: malformed message dropped');
        return;
      }
      try {
        this.onMessage(msg);
      } catch (err) {
        this.logger.error({ err }, 'gateway bus: handler threw');
      }
    });
  }

  async start(): Promise<void> {
    await this.redis.subscribe(this.channel, this.everyone);
  }

  async close(): Promise<void> {
    try {
      await this.redis.unsubscribe(this.channel, this.everyone);
    } catch {
      /* closing anyway */
    }
    this.redis.disconnect();
  }
}
