import type { RedisClient } from '../redis.js';
import type { PresenceLookup } from '../../workers/route.js';

/** Where a device is connected right now, as its gateway node wrote it. */
export interface PresenceEntry {
  /** The gateway node (process) holding the connection. */
  node: string;
  /** Epoch ms of the CONNACK: tells two sessions of one device on one node apart. */
  since: number;
  network?: string;
  /** The heartbeat interval in force, seconds (0: none). */
  interval: number;
}

// HSET that returns what it replaced, so the new node learns whom to take the session from.
const CLAIM = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old`;

// Acts only while the entry still names this node and session: a device that has reconnected
// elsewhere (or again here) keeps its newer entry. ARGV[4] set: rewrite; absent: delete.
const IF_OWNER = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if not ok or type(e) ~= 'table' or e.node ~= ARGV[2] or e.since ~= tonumber(ARGV[3]) then return 0 end
if ARGV[4] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) else redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1`;

interface PresenceCommands {
  relayPresenceClaim(key: string, deviceId: string, value: string): Promise<string | null>;
  relayPresenceIfOwner(key: string, deviceId: string, node: string, since: string, value?: string): Promise<number>;
}

/** How long a node's liveness mark lasts without a refresh; its entries count as offline after. */
export const NODE_TTL_MS = 15_000;

/**
 * Presence in Redis, shared by every process: `<prefix>:presence:<appId>` is a hash of
 * deviceId → JSON {node, since, network, interval}. A gateway node writes its own devices and
 * removes them only while they still name it, so a device that moved to another node is never
 * marked offline by the node it left. Each node also keeps `<prefix>:gw-node:<node>` alive; an
 * entry whose node stopped refreshing it (a killed process) reads as offline and is cleaned up.
 */
export class Presence {
  private readonly cmd: PresenceCommands;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    const r = redis as unknown as Partial<PresenceCommands>;
    if (!r.relayPresenceClaim) redis.defineCommand('relayPresenceClaim', { numberOfKeys: 1, lua: CLAIM });
    if (!r.relayPresenceIfOwner) redis.defineCommand('relayPresenceIfOwner', { numberOfKeys: 1, lua: IF_OWNER });
    this.cmd = redis as unknown as PresenceCommands;
  }

  key(appId: string): string {
    return `${this.prefix}:presence:${appId}`;
  }

  nodeKey(node: string): string {
    return `${this.prefix}:gw-node:${node}`;
  }

  /** Marks the device online on `entry.node`; returns the entry it replaced, if any. */
  async claim(appId: string, deviceId: string, entry: PresenceEntry): Promise<PresenceEntry | null> {
    const old = await this.cmd.relayPresenceClaim(this.key(appId), deviceId, JSON.stringify(entry));
    return old ? parseEntry(old) : null;
  }

  /** Rewrites the device's entry (new interval or network) if it is still this session's. */
  async update(appId: string, deviceId: string, entry: PresenceEntry): Promise<boolean> {
    return (await this.cmd.relayPresenceIfOwner(this.key(appId), deviceId, entry.node, String(entry.since), JSON.stringify(entry))) === 1;
  }

  /** Marks the device offline, unless it is connected elsewhere (or again) by now. */
  async release(appId: string, deviceId: string, node: string, since: number): Promise<boolean> {
    return (await this.cmd.relayPresenceIfOwner(this.key(appId), deviceId, node, String(since))) === 1;
  }

  async get(appId: string, deviceId: string): Promise<PresenceEntry | null> {
    const v = await this.redis.hget(this.key(appId), deviceId);
    return v ? parseEntry(v) : null;
  }

  /**
   * The live node of each device that is online: one HMGET for the devices, one MGET for the
   * liveness of the nodes they name. Entries of dead nodes are dropped (and removed, lazily).
   */
  async locate(appId: string, deviceIds: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (deviceIds.length === 0) return out;
    const values = await this.redis.hmget(this.key(appId), ...deviceIds);
    const found: [string, PresenceEntry][] = [];
    values.forEach((v, i) => {
      const e = v ? parseEntry(v) : null;
      if (e) found.push([deviceIds[i]!, e]);
    });
    if (found.length === 0) return out;
    const nodes = [...new Set(found.map(([, e]) => e.node))];
    const alive = await this.redis.mget(...nodes.map((n) => this.nodeKey(n)));
    const live = new Set(nodes.filter((_, i) => alive[i] !== null));
    for (const [deviceId, e] of found) {
      if (live.has(e.node)) out.set(deviceId, e.node);
      else void this.release(appId, deviceId, e.node, e.since).catch(() => undefined);
    }
    return out;
  }

  /** The route worker's view: which of these devices hold a live self-channel connection. */
  readonly lookup: PresenceLookup = async (appId, deviceIds) => new Set((await this.locate(appId, deviceIds)).keys());

  /** Keeps this node's liveness mark; call at least every NODE_TTL_MS / 3. */
  async markAlive(node: string, ttlMs = NODE_TTL_MS): Promise<void> {
    await this.redis.set(this.nodeKey(node), String(Date.now()), 'PX', ttlMs);
  }

  async markDead(node: string): Promise<void> {
    await this.redis.del(this.nodeKey(node));
  }
}

function parseEntry(v: string): PresenceEntry | null {
  try {
    const e = JSON.parse(v) as PresenceEntry;
    return typeof e?.node === 'string' ? e : null;
  } catch {
    return null;
  }
}
