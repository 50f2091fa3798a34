import { sql } from 'kysely';
import { signDeviceToken, verifyDeviceCredential } from '../core/device-token.js';
import type { Context } from '../context.js';
import { BusPublisher, type BusClose } from './bus.js';

/** How long a cached epoch lives in Redis; a change overwrites it at once, so this only bounds memory. */
const CACHE_SEC = 86_400;
/** Cached for a device that does not exist: its passwords are refused. */
const GONE = '-';

/**
 * The lifecycle of a device's self-channel password (docs/self-channel.md §2.1). The password is
 * signed (src/core/device-token.ts) with the device's credential epoch, kept in PostgreSQL
 * (`devices.credential_epoch`) and cached in Redis, so a gateway checks a CONNECT with one HMAC and
 * one Redis GET, never PostgreSQL while the cache holds the device.
 * Consistency: a change writes PostgreSQL, then SETs the cache unconditionally; a miss fills the
 * cache with SET NX, so a fill that read PostgreSQL before a change can never overwrite it.
 * After a change every gateway node is told to close the device's live connection.
 */
export class DeviceCredentials {
  private readonly bus: BusPublisher;

  constructor(private readonly ctx: Pick<Context, 'db' | 'queues' | 'config' | 'secrets'>) {
    this.bus = new BusPublisher(ctx.queues.connection, ctx.config.QUEUE_PREFIX);
  }

  private key(appId: string, deviceId: string): string {
    return `${this.ctx.config.QUEUE_PREFIX}:devcred:${appId}/${deviceId}`;
  }

  password(appId: string, deviceId: string, epoch: string | number | bigint): string {
    return signDeviceToken(this.ctx.secrets.deviceTokenSecret, appId, deviceId, String(epoch));
  }

  /** The device's current epoch, or null when it does not exist. */
  readonly current = async (appId: string, deviceId: string): Promise<string | null> => {
    const redis = this.ctx.queues.connection;
    const key = this.key(appId, deviceId);
    const hit = await redis.get(key);
    if (hit !== null) return hit === GONE ? null : hit;
    const row = await this.ctx.db
      .selectFrom('devices')
      .select(sql<string>`credential_epoch::text`.as('epoch'))
      .where('app_id', '=', appId)
      .where('id', '=', deviceId)
      .executeTakeFirst();
    await redis.set(key, row?.epoch ?? GONE, 'EX', CACHE_SEC, 'NX');
    return row?.epoch ?? null;
  };

  /** `Authorization: Device <id>:<password>` checked like a CONNECT: signature, then the current epoch. */
  async verify(deviceId: string, password: string): Promise<string | null> {
    const cred = verifyDeviceCredential(this.ctx.secrets.deviceTokenSecret, deviceId, password);
    if (!cred) return null;
    return (await this.current(cred.appId, deviceId)) === cred.epoch ? cred.appId : null;
  }

  /** Records the device's epoch after it was registered (a re-created device has a new one). */
  async registered(appId: string, deviceId: string, epoch: string | number | bigint): Promise<void> {
    // Per registration (a storm when a big app's users open it): on the auto-pipelined connection.
    await this.ctx.queues.pipelined.set(this.key(appId, deviceId), String(epoch), 'EX', CACHE_SEC);
  }

  /** Issues a new password: the old one is refused from now on and its live connection closed. */
  async rotate(appId: string, deviceId: string): Promise<string | null> {
    const row = await this.ctx.db
      .updateTable('devices')
      .set({ credential_epoch: sql`greatest(credential_epoch + 1, (floor(extract(epoch from clock_timestamp()) * 1000))::bigint)` })
      .where('app_id', '=', appId)
      .where('id', '=', deviceId)
      .returning(sql<string>`credential_epoch::text`.as('epoch'))
      .executeTakeFirst();
    if (!row) return null;
    await this.changed(appId, deviceId, row.epoch);
    return row.epoch;
  }

  /** The device was deleted: its password is refused from now on and its live connection closed. */
  async revoked(appId: string, deviceId: string): Promise<void> {
    await this.changed(appId, deviceId, GONE);
  }

  private async changed(appId: string, deviceId: string, value: string): Promise<void> {
    await this.ctx.queues.connection.set(this.key(appId, deviceId), value, 'EX', CACHE_SEC);
    const close: BusClose = { t: 'close', appId, deviceId };
    await this.bus.broadcast(close);
  }
}
