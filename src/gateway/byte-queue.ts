import { generate, parser as createParser, type Packet, type Parser } from 'mqtt-packet';

/**
 * A minimal stand-in for the `bl` BufferListStream that every mqtt-packet parser allocates as its
 * input buffer. That one is a full readable-stream Duplex: about 1.4 KB of heap per connection,
 * which is half of what an idle connection costs. This keeps an idle connection's input at one
 * shared empty buffer and provides exactly the methods the parser calls (append, length, consume,
 * readUInt8/16BE/32BE, slice, toString). Chunks are only concatenated when the parser reads across
 * them, i.e. once per packet that arrived in pieces.
 */
const EMPTY = Buffer.alloc(0);

export class ByteQueue {
  length = 0;
  private head: Buffer = EMPTY;
  private rest: Buffer[] | null = null;

  append(buf: Buffer): this {
    if (buf.length === 0) return this;
    if (this.length === 0) this.head = buf;
    else (this.rest ??= []).push(buf);
    this.length += buf.length;
    return this;
  }

  consume(bytes: number): this {
    const n = Math.trunc(bytes);
    if (!(n > 0)) return this;
    if (n >= this.length) {
      this.head = EMPTY;
      this.rest = null;
      this.length = 0;
      return this;
    }
    this.flat().head = this.head.subarray(n);
    this.length -= n;
    return this;
  }

  readUInt8(offset: number): number {
    return this.flat().head.readUInt8(offset);
  }

  readUInt16BE(offset: number): number {
    return this.flat().head.readUInt16BE(offset);
  }

  readUInt32BE(offset: number): number {
    return this.flat().head.readUInt32BE(offset);
  }

  /** A view (not a copy) of [start, end), like bl's slice of a single buffer. */
  slice(start = 0, end = this.length): Buffer {
    return this.flat().head.subarray(start, end);
  }

  toString(encoding: BufferEncoding, start?: number, end?: number): string {
    return this.flat().head.toString(encoding, start, end);
  }

  private flat(): this {
    if (this.rest) {
      this.head = Buffer.concat([this.head, ...this.rest], this.length);
      this.rest = null;
    }
    return this;
  }
}

interface ParserInternals {
  _list: unknown;
  _states: string[];
}

let verified: boolean | null = null;
let sharedStates: string[] | null = null;

/**
 * Swaps the parser's input buffer for a ByteQueue (and shares its constant state table), when a
 * one-time self-test shows the installed mqtt-packet parses identically with it; otherwise the
 * parser is left as it is. Call right after creating the parser.
 */
export function slimParser(p: Parser): Parser {
  if (verified === null) verified = selfTest();
  if (!verified) return p;
  const i = p as unknown as ParserInternals;
  i._list = new ByteQueue();
  if (sharedStates && i._states.join() === sharedStates.join()) i._states = sharedStates;
  return p;
}

function selfTest(): boolean {
  try {
    const samples: [Packet, number][] = [
      [{ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'd-1', clean: true, keepalive: 60, username: 'd-1', password: Buffer.from('a.b') }, 4],
      [{ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'devices/d-1', qos: 1 }, { topic: '$relay/heartbeat', qos: 0 }] }, 4],
      [{ cmd: 'publish', topic: '$relay/control', payload: Buffer.from('{"type":"opened","id":"m"}'), qos: 1, messageId: 7, dup: false, retain: false }, 4],
      [{ cmd: 'puback', messageId: 7 }, 4],
      [{ cmd: 'pingreq' }, 4],
      [{ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['devices/d-1'] }, 4],
      [{ cmd: 'disconnect' }, 4],
    ];
    const v5: Packet[] = [
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'd-2', clean: true, keepalive: 30, username: 'd-2', password: Buffer.from('x.y'), properties: { receiveMaximum: 10, userProperties: { network: 'wifi' } } },
      { cmd: 'publish', topic: '$relay/heartbeat', payload: Buffer.from('{"intervalSec":300}'), qos: 1, messageId: 3, dup: false, retain: false, properties: { payloadFormatIndicator: true } },
      { cmd: 'puback', messageId: 3, reasonCode: 0x87 },
      { cmd: 'disconnect', reasonCode: 0 },
    ];
    const v4bytes = Buffer.concat(samples.map(([pk, v]) => generate(pk, { protocolVersion: v })));
    const v5bytes = Buffer.concat(v5.map((pk) => generate(pk, { protocolVersion: 5 })));
    const run = (bytes: Buffer, slim: boolean, step: number): string => {
      const p = createParser({ protocolVersion: 4 });
      const out: Packet[] = [];
      p.on('packet', (pk) => out.push(pk));
      p.on('error', (e) => out.push({ cmd: 'disconnect', reasonCode: -1, error: String(e) } as unknown as Packet));
      if (slim) {
        (p as unknown as ParserInternals)._list = new ByteQueue();
        sharedStates ??= (p as unknown as ParserInternals)._states;
      }
      for (let o = 0; o < bytes.length; o += step) p.parse(bytes.subarray(o, o + step));
      return JSON.stringify(out);
    };
    for (const bytes of [v4bytes, v5bytes]) {
      const expected = run(bytes, false, bytes.length);
      for (const step of [1, 3, 7, bytes.length]) if (run(bytes, true, step) !== expected) return false;
    }
    return true;
  } catch {
    return false;
  }
}
