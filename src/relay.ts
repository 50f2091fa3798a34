import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Worker } from 'bullmq';
import type { Logger } from 'pino';
import { ProviderRegistry } from '../providers/registry.js';
import { createSelfProvider } from '../providers/self.js';
import { CHANNELS, type ProviderContext } from '../providers/types.js';
import { createRouteWorker } from '../workers/route.js';
import { createSelfAckWorker } from '../workers/self-ack.js';
import { createSendWorker, type ProviderSource } from '../workers/send.js';
import { Sweeper } from '../workers/sweeper.js';
import { CampaignScheduler } from '../workers/campaign-scheduler.js';
import { CampaignSendHooks } from './campaigns/send-hooks.js';
import { CampaignsRepo } from './db/campaigns-repo.js';
import { createApi } from './api/app.js';
import { loadSecrets } from './bootstrap.js';
import type { Config, Role } from './config.js';
import { createContext, type Context } from './context.js';
import { migrate, openDatabase } from './db/database.js';
import { MarketingCaps } from './marketing-caps.js';
import { registerGatewayMetrics, registry as metricsRegistry } from './metrics.js';
import { RateLimiter } from './rate-limiter.js';
import { ensureRedis } from './redis.js';
import { BusPublisher } from './self/bus.js';
import { selfDispatch } from './self/dispatch.js';
import { GatewayNode } from './self/gateway-node.js';
import { Presence } from './self/presence.js';
import { selfRecall } from './self/recall.js';

export interface Relay {
  ctx: Context;
  /** The HTTP server: the API's, or the gateway's own (MQTT over WebSocket) when only the gateway runs. */
  server?: Server;
  port?: number;
  /** The gateway role: MQTT over TCP on this port (GATEWAY_MQTT_PORT; 0 binds an ephemeral one). */
  gateway?: GatewayNode;
  mqttPort?: number;
  /** Runs one sweep now (tests, operators). */
  sweeper?: Sweeper;
  /** The scheduler role's campaign driver. */
  campaigns?: CampaignScheduler;
  /** The worker role's provider clients, as the send workers get them (`self` is built in). Read-only. */
  readonly providers?: ProviderSource;
  stop(): Promise<void>;
}

/** Provider endpoints and tuning, from the config. */
function providerContext(config: Config, logger: Logger): ProviderContext {
  return {
    endpoints: {
      ...(config.APNS_ENDPOINT ? { apns: config.APNS_ENDPOINT } : {}),
      fcm: config.FCM_ENDPOINT,
      huawei: config.HUAWEI_ENDPOINT,
      huaweiOauth: config.HUAWEI_OAUTH_ENDPOINT,
      xiaomi: config.XIAOMI_ENDPOINT,
      oppo: config.OPPO_ENDPOINT,
      vivo: config.VIVO_ENDPOINT,
      honor: config.HONOR_ENDPOINT,
      honorOauth: config.HONOR_OAUTH_ENDPOINT,
      meizu: config.MEIZU_ENDPOINT,
    },
    tuning: { apnsMaxStreams: config.APNS_MAX_STREAMS, apnsConnections: config.APNS_CONNECTIONS, fcmConcurrency: config.FCM_CONCURRENCY },
    logger: logger.child({ component: 'provider' }),
  };
}

/** The worker role: the router, one send worker per channel queue, the self-channel ack check. */
function startWorkers(ctx: Context, presence: Presence, bus: BusPublisher): { workers: Worker[]; registry: ProviderRegistry } {
  const { config, logger } = ctx;
  const dispatch = selfDispatch(ctx, presence, bus);
  const registry = new ProviderRegistry(
    ctx.repos.credentials,
    providerContext(config, logger),
    { self: (appId) => createSelfProvider(appId, dispatch) },
    10_000,
    logger,
  );
  const workers: Worker[] = [createRouteWorker(ctx, presence.lookup), createSelfAckWorker(ctx)];
  const limiter = new RateLimiter(ctx.queues.connection, config.QUEUE_PREFIX);
  const caps = new MarketingCaps(ctx.queues.connection, config.QUEUE_PREFIX);
  const campaigns = new CampaignSendHooks(ctx.db, new CampaignsRepo(ctx.db));
  for (const channel of CHANNELS) workers.push(createSendWorker(ctx, channel, registry, { limiter, caps, campaigns }));
  for (const w of workers) w.on('error', (err) => logger.error({ err, queue: w.name }, 'worker error'));
  return { workers, registry };
}

/**
 * Starts the roles this process runs on one shared context. Every role can run alone, so a
 * deployment scales each out on many machines sharing one Redis and one PostgreSQL.
 */
export async function startRelay(config: Config, logger: Logger, announce: (line: string) => void = (l) => logger.info(l)): Promise<Relay> {
  const roles = new Set<Role>(config.ROLES);
  const secrets = loadSecrets(config, announce);
  const redis = await ensureRedis(config.REDIS_URL, config.DATA_DIR, logger);
  const database = await openDatabase({ url: config.DATABASE_URL, schema: config.DATABASE_SCHEMA, poolSize: config.DATABASE_POOL_SIZE, dataDir: config.DATA_DIR });
  await migrate(database.db, config.DATABASE_SCHEMA, logger);
  const ctx = createContext(config, logger, database.db, redis.options, secrets);

  // Presence and the gateway bus live in Redis; every role that routes, sends or recalls uses them.
  const presence = new Presence(ctx.queues.connection, config.QUEUE_PREFIX);
  const bus = new BusPublisher(ctx.queues.connection, config.QUEUE_PREFIX);

  const { workers, registry } = roles.has('worker') ? startWorkers(ctx, presence, bus) : { workers: [], registry: undefined };

  let sweeper: Sweeper | undefined;
  let campaigns: CampaignScheduler | undefined;
  if (roles.has('scheduler')) {
    sweeper = new Sweeper(ctx);
    sweeper.start();
    campaigns = new CampaignScheduler(ctx, presence.lookup, { tickMs: config.CAMPAIGN_TICK, leaseMs: config.CAMPAIGN_LEASE });
    campaigns.start();
    logger.info({ scheduler: campaigns.id }, 'campaign scheduler started');
  }

  let gateway: GatewayNode | undefined;
  let mqttPort: number | undefined;
  if (roles.has('gateway')) {
    gateway = new GatewayNode(ctx);
    mqttPort = await gateway.listen(config.GATEWAY_MQTT_PORT, config.HOST);
    const gw = gateway.gw;
    registerGatewayMetrics(() => ({ connections: gw.connectionCount, online: gw.onlineCount }));
  }

  let server: Server | undefined;
  let port: number | undefined;
  if (roles.has('api')) {
    server = createServer(createApi(ctx, { ...(mqttPort !== undefined ? { mqttPort } : {}), recall: selfRecall(ctx, presence, bus) }));
    server.keepAliveTimeout = 65_000;
  } else if (gateway) {
    // A gateway-only process serves MQTT over WebSocket, /healthz and /metrics on its own HTTP server.
    server = createServer((req, res) => {
      if (req.url === '/metrics') {
        void metricsRegistry.metrics().then((text) => res.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(text));
        return;
      }
      res.statusCode = req.url === '/healthz' ? 200 : 404;
      res.setHeader('content-type', 'application/json');
      res.end(res.statusCode === 200 ? '{"status":"ok"}' : '{"error":{"code":"not_found","message":"MQTT over WebSocket is at /mqtt"}}');
    });
  }
  if (server) {
    gateway?.attachWebSocket(server, '/mqtt');
    server.listen(config.PORT, config.HOST);
    await once(server, 'listening');
    const addr = server.address();
    port = typeof addr === 'object' && addr ? addr.port : config.PORT;
  }

  logger.info({ roles: [...roles], port, mqttPort, ...(gateway ? { node: gateway.id } : {}), database: database.kind }, 'relay started');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // Sessions first: their presence goes, their last acks are written, WebSockets close.
      await gateway?.close();
      if (server) {
        server.closeIdleConnections();
        await new Promise<void>((r) => server!.close(() => r()));
      }
      await sweeper?.stop();
      await campaigns?.stop();
      await Promise.all(workers.map((w) => w.close()));
      await registry?.close();
      await ctx.lastSeen.flush();
      await ctx.queues.close();
      await database.close();
      await redis.stop();
    })());

  return {
    ctx,
    ...(server ? { server } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(gateway ? { gateway } : {}),
    ...(mqttPort !== undefined ? { mqttPort } : {}),
    ...(sweeper ? { sweeper } : {}),
    ...(campaigns ? { campaigns } : {}),
    ...(registry ? { providers: registry } : {}),
    stop,
  };
}
