/**
 * Devices on Relay's self channel, for the self-* integration tests: a standard MQTT.js client that
 * acks every push, and a raw `mqtt-packet` client that acks only when told (so a test can leave a
 * push un-acked and still read what comes after it: MQTT.js stops reading until it acks).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as mqttConnect, type IConnackPacket, type MqttClient } from 'mqtt';
import { generate, parser as mqttParser, type IPublishPacket, type Packet } from 'mqtt-packet';

export interface Received {
  topic: string;
  body: Record<string, unknown>;
  dup: boolean;
}

export interface SelfInfo {
  mqtt: string;
  ws: string;
  clientId: string;
  username: string;
  password: string;
  topic: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** MQTT.js (3.1.1 or 5), subscribed to its device topic; acks every push. */
export class MqttDevice {
  readonly received: Received[] = [];
  readonly closed: Promise<void>;

  private constructor(
    readonly client: MqttClient,
    readonly connack: IConnackPacket,
  ) {
    // Errors after the CONNACK (a server DISCONNECT on takeover…) end in 'close', which tests await.
    client.on('error', () => undefined);
    client.on('message', (topic, payload, packet) => {
      this.received.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown>, dup: packet.dup });
    });
    this.closed = new Promise((resolve) => client.once('close', () => resolve()));
  }

  static async connect(
    url: string,
    self: Pick<SelfInfo, 'clientId' | 'username' | 'password' | 'topic'>,
    opts: { version?: 4 | 5; network?: string; keepalive?: number; subscribe?: boolean } = {},
  ): Promise<MqttDevice> {
    const version = opts.version ?? 5;
    const client = mqttConnect(url, {
      clientId: self.clientId,
      username: self.username,
      password: self.password,
      protocolVersion: version,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      keepalive: opts.keepalive ?? 60,
      ...(version === 5 && opts.network ? { properties: { userProperties: { network: opts.network } } } : {}),
    });
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    const dev = new MqttDevice(client, connack);
    if (opts.subscribe !== false) await client.subscribeAsync(self.topic, { qos: 1 });
    return dev;
  }

  pushes(): Received[] {
    return this.received.filter((r) => r.body.type === 'push');
  }

  async waitFor(id: string, ms = 20_000): Promise<Received> {
    return until(() => this.received.find((r) => r.body.id === id), ms, `message ${id}`);
  }

  async end(): Promise<void> {
    await this.client.endAsync();
  }
}

/** A raw MQTT client that acks a push only when the test says so. */
export class RawDevice {
  readonly packets: Packet[] = [];
  readonly closed: Promise<void>;
  private readonly parser;

  private constructor(
    private readonly sock: Socket,
    readonly version: 4 | 5,
  ) {
    this.parser = mqttParser({ protocolVersion: version });
    this.parser.on('packet', (p: Packet) => this.packets.push(p));
    this.parser.on('error', () => undefined);
    sock.on('data', (b) => this.parser.parse(b));
    sock.on('error', () => undefined);
    this.closed = new Promise((resolve) => sock.once('close', () => resolve()));
  }

  static async connect(port: number, self: Pick<SelfInfo, 'clientId' | 'password' | 'topic'>, version: 4 | 5 = 4): Promise<RawDevice> {
    const sock = netConnect(port, '127.0.0.1');
    await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    const dev = new RawDevice(sock, version);
    dev.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: self.clientId, clean: true, keepalive: 60, username: self.clientId, password: Buffer.from(self.password) });
    const connack = (await dev.waitFor((p) => p.cmd === 'connack', 'CONNACK')) as { returnCode?: number; reasonCode?: number };
    if ((connack.returnCode ?? connack.reasonCode ?? 0) !== 0) throw new Error(`CONNECT refused: ${JSON.stringify(connack)}`);
    dev.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: self.topic, qos: 1 }] });
    await dev.waitFor((p) => p.cmd === 'suback', 'SUBACK');
    return dev;
  }

  send(p: Packet): void {
    this.sock.write(generate(p, { protocolVersion: this.version }));
  }

  publishes(): { packet: IPublishPacket; body: Record<string, unknown> }[] {
    return this.packets
      .filter((p): p is IPublishPacket => p.cmd === 'publish' && (p as IPublishPacket).topic.startsWith('devices/'))
      .map((packet) => ({ packet, body: JSON.parse(packet.payload.toString()) as Record<string, unknown> }));
  }

  async waitForBody(pred: (body: Record<string, unknown>) => boolean, what: string, ms = 20_000) {
    return until(() => this.publishes().find((p) => pred(p.body)), ms, what);
  }

  async waitFor(pred: (p: Packet) => boolean, what: string, ms = 10_000): Promise<Packet> {
    return until(() => this.packets.find(pred), ms, what);
  }

  /** PUBACKs the push (or revoke) carrying this Relay message id. */
  ack(id: string, type = 'push'): void {
    const p = this.publishes().find((x) => x.body.id === id && x.body.type === type);
    if (!p) throw new Error(`no ${type} ${id} to ack`);
    this.send({ cmd: 'puback', messageId: p.packet.messageId! });
  }

  close(): void {
    this.sock.destroy();
  }
}
