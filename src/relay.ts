import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Worker } from 'bullmq';
import type { Logger } from 'pino';
import { ProviderRegistry } from '../providers/registry.js';
import { createSelfProvider } from '../providers/self.js';
import { CHANNELS, providerContextFrom } from '../providers/channels.js';
import { type ProviderContext } from '../providers/types.js';
import { createRouteWorker } from '../workers/route.js';
import { createRecallWorker } from '../workers/recall.js';
import { createSelfAckWorker } from '../workers/self-ack.js';
import { createSmsFallbackWorker } from '../workers/sms-fallback.js';
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
import { serveHealth } from './health-server.js';
import { createLimitedHttpsServer, createLimitedServer } from './http-limits.js';
import { MarketingCaps } from './marketing-caps.js';
import { SmsDailyCap, cappedSms } from './sms-cap.js';
import { QuotaDays } from './quota-days.js';
import { registerGatewayMetrics } from './metrics.js';
import { RateLimiter } from './rate-limiter.js';
import { coreReadiness, type Readiness, type ReadinessCheck } from './readiness.js';
import { ensureRedis } from './redis.js';
import { API_PROCESS_HEADER } from './api-cluster.js';
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
  /** MQTT over TLS and wss (`/mqtt`), when GATEWAY_TLS_CERT and GATEWAY_TLS_KEY are set. */
  mqttsPort?: number;
  wssPort?: number;
  /** Runs one sweep now (tests, operators). */
  sweeper?: Sweeper;
  /** The scheduler role's campaign driver. */
  campaigns?: CampaignScheduler;
  /** The worker role's provider clients, as the send workers get them (`self` is built in). Read-only. */
  readonly providers?: ProviderSource;
  /** What `/readyz` checks in this process. */
  readiness: Readiness;
  stop(): Promise<void>;
}

export interface RelayOptions {
  /**
   * False in a forked worker process: its supervisor answers health and metrics for it, so it
   * opens no HTTP listener (default true).
   */
  listen?: boolean;
  /** More readiness checks (the supervisor's: a worker process is alive). */
  checks?: Record<string, ReadinessCheck>;
  /** One of several API processes (api-cluster.ts): its number, sent in a response header. */
  apiProcess?: string;
}

/** Provider endpoints and tuning, from the config. */
function providerContext(config: Config, logger: Logger): ProviderContext {
  return providerContextFrom(config.CHANNEL_SETTINGS, { logger: logger.child({ component: 'provider' }) });
}

/** The worker role: the router, one send worker per channel queue, the self-channel ack check, recalls. */
function startWorkers(ctx: Context, presence: Presence, bus: BusPublisher): { workers: Worker[]; registry: ProviderRegistry; registries: ProviderRegistry[] } {
  const { config, logger } = ctx;
  const dispatch = selfDispatch(ctx, presence, bus);
  const newRegistry = () =>
    new ProviderRegistry(ctx.repos.credentials, providerContext(config, logger), { self: (appId) => createSelfProvider(appId, dispatch) }, 10_000, logger);
  const registry = newRegistry();
  // The transactional lane's own provider clients: its own HTTP/2 sessions and stream permits,
  // so a single push's token never waits behind a fan-out's batches inside a shared client
  // (docs/scaling.md, Isolation). Per-credential QPS limits are kept in Redis and stay shared.
  const txRegistry = newRegistry();
  const workers: Worker[] = [createRouteWorker(ctx, presence.lookup), createSelfAckWorker(ctx), createSmsFallbackWorker(ctx), createRecallWorker(ctx, registry, presence, bus)];
  const limiter = new RateLimiter(ctx.queues.connection, config.QUEUE_PREFIX);
  const caps = new MarketingCaps(ctx.queues.connection, config.QUEUE_PREFIX);
  const quotaDays = new QuotaDays(ctx.queues.connection, config.QUEUE_PREFIX, ctx.clock);
  const campaigns = new CampaignSendHooks(ctx.db, new CampaignsRepo(ctx.db));
  // SMS costs money: the sms channel's providers count against the app's daily cap.
  const smsCap = new SmsDailyCap(ctx.queues.connection, config.QUEUE_PREFIX, config.SMS_DAILY_CAP, async (appId) => (await ctx.repos.apps.get(appId))?.settings.smsDailyCap);
  const source = (from: ProviderRegistry) => {
    const sms = cappedSms(from, smsCap);
    return (channel: string) => (channel === 'sms' ? sms : from);
  };
  const bulk = source(registry);
  const tx = source(txRegistry);
  for (const channel of CHANNELS) workers.push(createSendWorker(ctx, channel, bulk(channel), { limiter, caps, campaigns, quotaDays }));
  // The transactional lane: single pushes have workers of their own, so a fan-out's backlog on
  // the bulk queue never stands between them and the provider.
  for (const channel of CHANNELS) workers.push(createSendWorker(ctx, channel, tx(channel), { limiter, caps, campaigns, quotaDays, lane: 'tx' }));
  for (const w of workers) w.on('error', (err) => logger.error({ err, queue: w.name }, 'worker error'));
  return { workers, registry, registries: [registry, txRegistry] };
}

/**
 * Starts the roles this process runs on one shared context. Every role can run alone, so a
 * deployment scales each out on many machines sharing one Redis and one PostgreSQL.
 */
export async function startRelay(
  config: Config,
  logger: Logger,
  announce: (line: string) => void = (l) => logger.info(l),
  opts: RelayOptions = {},
): Promise<Relay> {
  const roles = new Set<Role>(config.ROLES);
  const secrets = loadSecrets(config, announce);
  const redis = await ensureRedis(config.REDIS_URL, config.DATA_DIR, logger, config.REDIS_CLUSTER_NODES);
  const database = await openDatabase({ url: config.DATABASE_URL, schema: config.DATABASE_SCHEMA, poolSize: config.DATABASE_POOL_SIZE, dataDir: config.DATA_DIR, onIdleError: (err) => logger.warn({ err }, 'an idle database connection failed') });
  await migrate(database.db, config.DATABASE_SCHEMA, logger, { credentialsKey: secrets.credentialsKey });
  const ctx = createContext(config, logger, database.db, redis.config, secrets);

  // Presence and the gateway bus live in Redis; every role that routes, sends or recalls uses them.
  const presence = new Presence(ctx.queues.connection, config.QUEUE_PREFIX);
  const bus = new BusPublisher(ctx.queues.connection, config.QUEUE_PREFIX);

  const { workers, registry, registries } = roles.has('worker') ? startWorkers(ctx, presence, bus) : { workers: [], registry: undefined, registries: [] };

  let stopping: Promise<void> | undefined;
  const readiness = coreReadiness(ctx).add('draining', () => (stopping ? 'shutting down' : 'ok'));
  if (workers.length > 0) readiness.add('workers', () => (workers.every((w) => w.isRunning()) ? 'ok' : 'not running'));
  for (const [name, check] of Object.entries(opts.checks ?? {})) readiness.add(name, check);

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
  let mqttsPort: number | undefined;
  let wssPort: number | undefined;
  let wss: HttpsServer | undefined;
  if (roles.has('gateway')) {
    gateway = new GatewayNode(ctx);
    mqttPort = await gateway.listen(config.GATEWAY_MQTT_PORT, config.HOST);
    const gw = gateway.gw;
    registerGatewayMetrics(() => ({ connections: gw.connectionCount, online: gw.onlineCount }));
    if (config.GATEWAY_TLS_CERT && config.GATEWAY_TLS_KEY) {
      const tls = { cert: readFileSync(config.GATEWAY_TLS_CERT), key: readFileSync(config.GATEWAY_TLS_KEY) };
      mqttsPort = await gateway.listenTls(config.GATEWAY_MQTTS_PORT, config.HOST, tls);
      wss = createLimitedHttpsServer(config, tls, (_req, res) => {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"MQTT over WebSocket is at /mqtt"}}');
      });
      gateway.attachWebSocket(wss, '/mqtt');
      wss.listen(config.GATEWAY_WSS_PORT, config.HOST);
      await once(wss, 'listening');
      wssPort = (wss.address() as { port: number }).port;
    }
  }

  let server: Server | undefined;
  let port: number | undefined;
  if (roles.has('api')) {
    const api = createApi(ctx, { ...(mqttPort !== undefined ? { mqttPort, mqttsPort, wssPort } : {}), recall: selfRecall(ctx, presence, bus), readiness, presence: presence.lookup });
    const label = opts.apiProcess;
    // Which of several API processes answered: for operators (and the test) to see the spread.
    server = createLimitedServer(config, label ? (req, res) => (res.setHeader(API_PROCESS_HEADER, label), api(req, res)) : api);
  } else if (gateway || opts.listen !== false) {
    // Without the API, a process still answers /healthz, /readyz and /metrics: the gateway on its
    // own HTTP server (beside MQTT over WebSocket), a worker or scheduler on HEALTH_PORT.
    const health = serveHealth(readiness);
    server = createLimitedServer(config, (req, res) => {
      if (health(req, res)) return;
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not_found', message: gateway ? 'MQTT over WebSocket is at /mqtt' : `no route for ${req.method} ${req.url}`, details: null } }));
    });
  }
  if (server) {
    gateway?.attachWebSocket(server, '/mqtt');
    const listenPort = roles.has('api') || gateway ? config.PORT : (config.HEALTH_PORT ?? config.PORT);
    server.listen(listenPort, config.HOST);
    await once(server, 'listening');
    const addr = server.address();
    port = typeof addr === 'object' && addr ? addr.port : listenPort;
  }

  logger.info({ roles: [...roles], port, mqttPort, mqttsPort, wssPort, ...(gateway ? { node: gateway.id } : {}), database: database.kind }, 'relay started');

  const stop = () =>
    (stopping ??= (async () => {
      // Sessions first: their presence goes, their last acks are written, WebSockets close.
      await gateway?.close();
      if (wss) await new Promise<void>((r) => wss!.close(() => r()));
      if (server) {
        server.closeIdleConnections();
        await new Promise<void>((r) => server!.close(() => r()));
      }
      await sweeper?.stop();
      await campaigns?.stop();
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all(registries.map((r) => r.close()));
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
    ...(mqttsPort !== undefined ? { mqttsPort } : {}),
    ...(wssPort !== undefined ? { wssPort } : {}),
    ...(sweeper ? { sweeper } : {}),
    ...(campaigns ? { campaigns } : {}),
    ...(registry ? { providers: registry } : {}),
    readiness,
    stop,
  };
}
