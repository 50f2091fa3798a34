import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { Outcome, Provider, PushContent, SendTarget } from '../../../providers/types.js';
import type { PushRequest } from '../../../src/core/push-request.js';
import { deviceTopic } from '../../../src/gateway/acl.js';
import { DEFAULT_MAX_PACKET_BYTES } from '../../../src/gateway/downlink.js';
import { nodeChannel, type BusMessage } from '../../../src/self/bus.js';
import { eventually, Isolation, newApp, REDIS_URL, startTestRelay, type TestRelay } from '../../helpers/harness.js';
import { MqttDevice, type SelfInfo } from '../../helpers/self-devices.js';
import { once, type BatchKind, type ConformanceAdapter, type Scripted } from '../harness.js';

/**
 * The self channel (providers/self.ts): no mock and no credential. The adapter runs a Relay in
 * this process (api, worker and gateway roles; its own PostgreSQL schema and Redis prefix, the
 * gateway on an ephemeral port), takes the `self` provider from the relay's provider registry the
 * way the send worker does, and uses real MQTT.js devices (MQTT 5 and 3.1.1) as the "tokens":
 * for self a token is a device id.
 *
 * Scenario mapping:
 * 1. success: an online device (fresh, so its first seq is 1) → `sent`, providerId = the seq; the
 *    push is published once to the gateway node holding it and the device receives it (confirm).
 * 2. invalid: a device id that is not registered → `invalid` `UnknownDevice`, evidence {deviceId}:
 *    the target is gone, like a dead token.
 * 3. retry with Retry-After: n/a, nothing upstream throttles (see `retryAfter`).
 * 4. auth expiry: n/a, no credential (see `authExpiry`).
 * 5. mixed batch: online and offline devices and unknown ids, in one request. Online and offline
 *    are both `sent` with their seq (offline: kept in PostgreSQL, the offline store, for the next
 *    connect), unknown ids `invalid`. Per target there is no `retry` or `failed`: retries are whole
 *    batch (PostgreSQL or Redis), and size and expiry are per message. Confirm checks that only
 *    the online devices were published to and got it, and that the offline ones hold it.
 * 6. payload too large: a push whose MQTT PUBLISH would exceed the gateway's Maximum Packet Size
 *    (256 KiB) → `failed` `PayloadTooLarge`, before any seq or publish. The shared 5000 B map
 *    fits the channel, so this adapter brings its own.
 * 7. expired: `failed` `expired` before any seq or publish.
 * 8. "mock closed": this relay's Redis client (presence and gateway bus) is closed, the shared
 *    Redis server untouched → every target `retry` `GatewayBusUnavailable`.
 *
 * "Send requests" are device-addressed pushes published on the gateway bus (Redis pub/sub),
 * counted by a subscriber of this relay's bus channels.
 *
 * The provider in the scenarios is the registry's, wrapped in a fixture that does what the route
 * worker does first: the message row and one `queued` delivery row per target, whose id is the
 * delivery id the send worker hands the provider (the provider stores each seq on its row, so the
 * harness's `d-<i>` ids would not do). The outcomes are the provider's, unchanged.
 */

/** Online and offline devices registered (and connected) at start: every `ok()` takes a fresh one. */
const ONLINE = 10;
const OFFLINE = 4;

type Kind = 'online' | 'offline' | 'unknown';

interface Published {
  node: string;
  id: string;
  deviceId: string;
  seq: number;
}

/** A subscriber of every gateway node's bus channel under one prefix: what workers publish. */
class BusTap {
  readonly pushes: Published[] = [];
  private readonly redis = new Redis(REDIS_URL, { lazyConnect: true });

  constructor(private readonly prefix: string) {
    const head = nodeChannel(prefix, '');
    this.redis.on('pmessage', (_pattern: string, channel: string, text: string) => {
      const msg = JSON.parse(text) as BusMessage;
      // Forwards between nodes (hop) are the gateway's, not the provider's.
      if (msg.t !== 'push' || msg.hop) return;
      for (const [deviceId, seq] of msg.to) this.pushes.push({ node: channel.slice(head.length), id: msg.id, deviceId, seq });
    });
  }

  async start(): Promise<void> {
    await this.redis.connect();
    await this.redis.psubscribe(nodeChannel(this.prefix, '*'));
  }

  /**
   * Every publish that completed before this call has been seen: Redis queues a published message
   * for this connection before it answers the publisher, so it answers this PING after it.
   */
  async settle(): Promise<void> {
    await this.redis.ping();
  }

  close(): void {
    this.redis.disconnect();
  }
}

export function selfAdapter(): ConformanceAdapter {
  let t: TestRelay | undefined;
  let appId = '';
  let registry: Provider | undefined;
  let tap: BusTap | undefined;
  const online: { id: string; dev: MqttDevice }[] = [];
  const offline: string[] = [];
  const devices = new Map<string, MqttDevice>();
  const kinds = new Map<string, Kind>();
  let ghosts = 0;
  let okTurn = 0;
  let api: Awaited<ReturnType<typeof newApp>>['api'] | undefined;

  const relay = () => (t ?? assertStarted()).relay;
  const real = () => registry ?? assertStarted();

  const take = (kind: 'online' | 'offline'): string => {
    const id = kind === 'online' ? online.shift()?.id : offline.shift();
    if (!id) throw new Error(`self adapter: no ${kind} device left (raise ${kind === 'online' ? 'ONLINE' : 'OFFLINE'})`);
    kinds.set(id, kind);
    return id;
  };
  const unknown = (): string => {
    const id = `ghost-${++ghosts}`;
    kinds.set(id, 'unknown');
    return id;
  };

  /** What the route worker leaves for the send worker: the message and its queued self rows. */
  async function route(content: PushContent, targets: readonly SendTarget[]): Promise<string[]> {
    const tokens = targets.map((x) => x.token);
    if (new Set(tokens).size !== tokens.length) throw new Error('self adapter: a device appears twice in one send');
    const { repos, db } = relay().ctx;
    const request = {
      to: { devices: tokens },
      ...(content.notification ? { notification: content.notification } : {}),
      ...(content.data ? { data: content.data } : {}),
      ...(content.overrides ? { overrides: content.overrides } : {}),
      options: content.options,
    } as unknown as PushRequest;
    await repos.messages.insert({ id: content.messageId, appId, request, state: 'routed', recipients: tokens.length, sendAt: null, expiresAt: new Date(content.expiresAt) });
    await repos.deliveries.insertPage(
      appId,
      content.messageId,
      tokens.map((deviceId) => ({ deviceId, platform: 'android', channel: 'self', token: null, status: 'queued', error: null })),
    );
    const rows = await db.selectFrom('deliveries').select(['id', 'device_id']).where('message_id', '=', content.messageId).execute();
    const ids = new Map(rows.map((r) => [r.device_id, String(r.id)]));
    return tokens.map((token) => {
      const id = ids.get(token);
      if (!id) throw new Error(`no delivery row for ${token}`);
      return id;
    });
  }

  /** The registry's provider, behind the route worker's rows and a settled bus count. */
  const provider: Provider = {
    channel: 'self',
    async send(content, targets) {
      if (targets.length === 0) return real().send(content, targets);
      let ids: string[];
      try {
        ids = await route(content, targets);
      } catch (err) {
        throw new Error(`self adapter fixture (not the provider): ${(err as Error).message}`, { cause: err });
      }
      const out = await real().send(content, targets.map((x, i) => ({ ...x, deliveryId: ids[i]! })));
      await tap!.settle();
      return out;
    },
    // The registry owns the provider (relay.stop() closes it).
    async close() {},
  };

  async function register(id: string): Promise<SelfInfo> {
    const r = await (api ?? assertStarted())('PUT', `/v1/devices/${id}`, { platform: 'android', brand: 'samsung' });
    if (r.status !== 200) throw new Error(`register ${id}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.self as SelfInfo;
  }

  async function connect(id: string, version: 4 | 5): Promise<void> {
    const self = await register(id);
    const dev = await MqttDevice.connect(self.mqtt, self, { version });
    devices.set(id, dev);
    // Presence is written right after the CONNACK: the provider must find the device online.
    await eventually(async () => ((await relay().gateway!.presence.get(appId, id)) ? true : undefined), 10_000, `${id} online`);
    online.push({ id, dev });
  }

  const closeMock = once(async () => {
    // The worker's presence reads and bus publishes go through this client; the server stays up.
    t?.relay.ctx.queues.connection.disconnect();
  });

  return {
    channel: 'self',
    async start() {
      t = await startTestRelay({ GATEWAY_MQTT_PORT: '0', ROLES: 'api,worker,gateway' }, new Isolation());
      const app = await newApp(t);
      appId = app.appId;
      api = app.api;
      tap = new BusTap(t.iso.prefix);
      await tap.start();
      await Promise.all(Array.from({ length: ONLINE }, (_, i) => connect(`on-${i + 1}`, i % 2 === 0 ? 5 : 4)));
      for (let i = 1; i <= OFFLINE; i++) {
        await register(`off-${i}`);
        offline.push(`off-${i}`);
      }
      const p = await relay().providers?.get(appId, 'self');
      assert.ok(p, 'the relay registry serves the built-in self provider');
      assert.equal(p.channel, 'self');
      registry = p;
    },
    get provider() {
      return registry ? provider : assertStarted();
    },
    sendRequests: () => tap?.pushes.length ?? 0,
    closeMock,
    close: once(async () => {
      await Promise.all([...devices.values()].map((d) => d.end().catch(() => undefined)));
      tap?.close();
      await t?.stop();
      await t?.iso.drop();
    }),

    ok: () => take('online'),
    // Every ok() device is fresh: its first seq is 1.
    providerId: () => '1',
    invalid() {
      const token = unknown();
      return { token, code: 'UnknownDevice', evidence: { deviceId: token } };
    },
    retryAfter: () => ({
      notApplicable:
        'nothing upstream throttles: the gateway is Relay\'s own and takes every push (a device whose queue is full ' +
        'gets it from PostgreSQL on its next connect); the only retryable failures are PostgreSQL (seq) and Redis ' +
        '(presence, bus), which carry no Retry-After (Redis: scenario 8)',
    }),
    authExpiry: {
      notApplicable: 'no credential: workers reach the gateways through Relay\'s own Redis, and devices authenticate to the gateway, not Relay to them',
    },
    batchToken(kind: BatchKind): Scripted | undefined {
      switch (kind) {
        case 'ok':
          return { token: take(okTurn++ % 2 === 0 ? 'online' : 'offline') };
        case 'invalid':
          return { token: unknown(), code: 'UnknownDevice' };
        case 'retry':
        case 'failed':
          return undefined;
      }
    },
    batch: { chunkSize: 1, retryScope: 'token' },
    payloadTooLarge: {
      code: 'PayloadTooLarge',
      local: true,
      data: { blob: 'x'.repeat(DEFAULT_MAX_PACKET_BYTES) },
    },

    async confirm(content: PushContent, tokens: readonly string[], outcomes: readonly Outcome[]) {
      const published = (tap ?? assertStarted()).pushes.filter((p) => p.id === content.messageId);
      const wantPublished: [string, number][] = [];
      for (const [i, token] of tokens.entries()) {
        const o = outcomes[i]!;
        const kind = kinds.get(token);
        if (kind === 'unknown') {
          assert.equal(o.kind, 'invalid', `${token}: ${JSON.stringify(o)}`);
          continue;
        }
        assert.ok(o.kind === 'sent' && o.providerId, `${token}: sent with a seq: ${JSON.stringify(o)}`);
        const seq = Number(o.providerId);
        if (kind === 'online') {
          wantPublished.push([token, seq]);
          const got = await devices.get(token)!.waitFor(content.messageId);
          assert.equal(got.topic, deviceTopic(token));
          assert.equal(got.dup, false);
          assert.deepEqual(
            { type: got.body.type, seq: got.body.seq, expiresAt: got.body.expiresAt, notification: got.body.notification, data: got.body.data },
            { type: 'push', seq, expiresAt: content.expiresAt, notification: content.notification, data: content.data },
            `${token} received the push with its seq`,
          );
        } else {
          const pending = await relay().ctx.repos.self.pending(appId, token, 0, 100);
          assert.deepEqual(
            pending.filter((m) => m.messageId === content.messageId).map((m) => m.seq),
            [seq],
            `${token} (offline) holds the push in PostgreSQL with its seq`,
          );
        }
      }
      assert.deepEqual(
        published.map((p) => [p.deviceId, p.seq]),
        wantPublished,
        'published once per online device, with its seq, and to no one else',
      );
      for (const p of published) assert.equal(p.node, relay().gateway!.id, 'to the gateway node holding the device');
    },
  };
}

function assertStarted(): never {
  throw new Error('adapter not started');
}
