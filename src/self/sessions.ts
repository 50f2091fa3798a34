import type { RedisClient } from '../redis.js';
import { MAX_TTL_SECONDS } from '../core/push-request.js';
import type { SessionStore } from '../gateway/index.js';

/**
 * What Relay remembers of a device's self-channel sessions beyond PostgreSQL's pending messages,
 * in one Redis hash per device, `<prefix>:self-session:<appId>:<deviceId>`:
 * - `sub`: its subscription to `devices/<id>` is persisted (MQTT clean session 0 / Session Expiry
 *   > 0): `0` while a connection holds it, else the epoch ms it expires at;
 * - `w`: the highest seq written to the device by a connection that has ended;
 * - `o`: the connection in progress (`<node> <connectedAt>`), cleared when it ends. One still set
 *   when the next connection opens ended without telling (a killed node) or is being taken over:
 *   what it wrote is unknown.
 * The hash lasts 28 days from its last write: no message (and no session) lives longer.
 */
const TTL_MS = MAX_TTL_SECONDS * 1000;

// Present while held, or until its expiry; a resumed subscription is held again.
const RESUME = `
local s = redis.call('HGET', KEYS[1], 'sub')
if not s or (s ~= '0' and tonumber(s) <= tonumber(ARGV[1])) then return 0 end
redis.call('HSET', KEYS[1], 'sub', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// ARGV[1]: '0' (hold), an expiry epoch ms, or '' (forget).
const KEEP = `
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'sub') return 0 end
redis.call('HSET', KEYS[1], 'sub', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// Returns what earlier connections left: {w, o}; then marks this one in progress.
const OPEN = `
local prev = redis.call('HMGET', KEYS[1], 'w', 'o')
redis.call('HSET', KEYS[1], 'o', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return prev`;

// Only the connection in progress clears its mark: a newer one (a takeover) keeps its own.
const CLOSE = `
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then redis.call('HDEL', KEYS[1], 'o') end
local n = tonumber(ARGV[2])
if n > 0 and n > tonumber(redis.call('HGET', KEYS[1], 'w') or '0') then redis.call('HSET', KEYS[1], 'w', ARGV[2]) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 0`;

interface SessionCommands {
  relaySelfResume(key: string, now: string, ttl: string): Promise<number>;
  relaySelfKeep(key: string, value: string, ttl: string): Promise<number>;
  relaySelfOpen(key: string, tag: string, ttl: string): Promise<[string | null, string | null]>;
  relaySelfClose(key: string, tag: string, maxSeq: string, ttl: string): Promise<number>;
}

/** What the device may already have received: pending messages up to `writtenSeq` go out with DUP. */
export interface Written {
  /** Seqs at or below this were written to an earlier connection (or may have been). */
  writtenSeq: number;
}

export class SelfSessions implements SessionStore {
  private readonly cmd: SessionCommands;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    /** Every write's promise, so a closing node can wait for them. */
    private readonly track: <T>(p: Promise<T>) => Promise<T>,
  ) {
    const r = redis as unknown as Partial<SessionCommands>;
    if (!r.relaySelfResume) redis.defineCommand('relaySelfResume', { numberOfKeys: 1, lua: RESUME });
    if (!r.relaySelfKeep) redis.defineCommand('relaySelfKeep', { numberOfKeys: 1, lua: KEEP });
    if (!r.relaySelfOpen) redis.defineCommand('relaySelfOpen', { numberOfKeys: 1, lua: OPEN });
    if (!r.relaySelfClose) redis.defineCommand('relaySelfClose', { numberOfKeys: 1, lua: CLOSE });
    this.cmd = redis as unknown as SessionCommands;
  }

  key(appId: string, deviceId: string): string {
    return `${this.prefix}:self-session:${appId}:${deviceId}`;
  }

  // ---- SessionStore: the persisted subscription

  async resume(appId: string, deviceId: string): Promise<boolean> {
    return (await this.cmd.relaySelfResume(this.key(appId, deviceId), String(Date.now()), String(TTL_MS))) === 1;
  }

  hold(appId: string, deviceId: string): Promise<void> {
    return this.keep(appId, deviceId, '0');
  }

  expire(appId: string, deviceId: string, expirySec: number): Promise<void> {
    return this.keep(appId, deviceId, expirySec > 0 ? String(Date.now() + expirySec * 1000) : '');
  }

  private async keep(appId: string, deviceId: string, value: string): Promise<void> {
    await this.track(this.cmd.relaySelfKeep(this.key(appId, deviceId), value, String(TTL_MS)));
  }

  // ---- what earlier connections wrote (MQTT DUP)

  /**
   * Marks connection `tag` of the device in progress; resolves with what earlier ones wrote. When
   * an earlier one is still marked (it died without ending, or is being taken over), everything
   * pending may have been written: Infinity.
   */
  async open(appId: string, deviceId: string, tag: string): Promise<Written> {
    const [w, o] = await this.cmd.relaySelfOpen(this.key(appId, deviceId), tag, String(TTL_MS));
    return { writtenSeq: o !== null ? Infinity : Number(w ?? 0) };
  }

  /** Connection `tag` ended having written seqs up to `maxSeq` (0: none). */
  close(appId: string, deviceId: string, tag: string, maxSeq: number): Promise<number> {
    return this.track(this.cmd.relaySelfClose(this.key(appId, deviceId), tag, String(maxSeq), String(TTL_MS)));
  }
}
