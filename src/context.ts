import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Secrets } from './bootstrap.js';
import { Clock } from './campaigns/clock.js';
import type { Config } from './config.js';
import { AppsRepo } from './db/apps-repo.js';
import { CountersRepo } from './db/counters-repo.js';
import { CredentialsRepo } from './db/credentials-repo.js';
import { DeliveriesRepo } from './db/deliveries-repo.js';
import { DevicesRepo } from './db/devices-repo.js';
import { LastSeenWriter } from './db/last-seen.js';
import { MessagesRepo } from './db/messages-repo.js';
import { PartitionsRepo } from './db/partitions-repo.js';
import { SelfRepo } from './db/self-repo.js';
import { StatsRepo } from './db/stats-repo.js';
import type { DB } from './db/schema.js';
import { Queues } from './queues.js';
import type { RedisConfig } from './redis.js';

/** Everything a role needs, built once per process. */
export interface Context {
  config: Config;
  logger: Logger;
  db: Kysely<DB>;
  /** How to reach Redis (one server or a cluster): see createRedis and bullConnection. */
  redis: RedisConfig;
  secrets: Secrets;
  queues: Queues;
  /** Campaign scheduling and quota-day time (tests move it). */
  clock: Clock;
  /** Batched, throttled `devices.last_seen_at` updates (SDK events, self-channel connects). */
  lastSeen: LastSeenWriter;
  repos: {
    apps: AppsRepo;
    credentials: CredentialsRepo;
    devices: DevicesRepo;
    messages: MessagesRepo;
    deliveries: DeliveriesRepo;
    self: SelfRepo;
    counters: CountersRepo;
    stats: StatsRepo;
    partitions: PartitionsRepo;
  };
}

export function createContext(config: Config, logger: Logger, db: Kysely<DB>, redis: RedisConfig, secrets: Secrets): Context {
  return {
    config,
    logger,
    db,
    redis,
    secrets,
    queues: new Queues(redis, config.QUEUE_PREFIX),
    clock: new Clock(),
    lastSeen: new LastSeenWriter(db, logger),
    repos: {
      apps: new AppsRepo(db, secrets.credentialsKey),
      credentials: new CredentialsRepo(db, secrets.credentialsKey),
      devices: new DevicesRepo(db),
      messages: new MessagesRepo(db),
      deliveries: new DeliveriesRepo(db),
      self: new SelfRepo(db),
      counters: new CountersRepo(db),
      stats: new StatsRepo(db),
      partitions: new PartitionsRepo(db),
    },
  };
}
