import express, { type Express } from 'express';
import type { Context } from '../context.js';
import { httpRequests } from '../metrics.js';
import type { Readiness } from '../readiness.js';
import { Authenticator, authenticate } from './auth.js';
import { adminQueuesRouter } from './admin-queues.js';
import { ApiError, errorHandler } from './errors.js';
import { ApiRateLimits } from './rate-limits.js';
import { appsRouter } from './routes/apps.js';
import { campaignsRouter } from './routes/campaigns.js';
import { consoleRouter } from './routes/console.js';
import { credentialsRouter } from './routes/credentials.js';
import { dashboardRouter } from './routes/dashboard.js';
import { devicesRouter } from './routes/devices.js';
import { eventsRouter } from './routes/events.js';
import { healthRouter } from './routes/health.js';
import { inboxRouter } from './routes/inbox.js';
import { deliveriesRouter } from './routes/deliveries.js';
import { messagesRouter } from './routes/messages.js';
import type { PresenceLookup } from '../../workers/route.js';
import { receiptsRouter } from './routes/receipts.js';
import { statsRouter } from './routes/stats.js';

export interface ApiOptions {
  /** The MQTT port devices are told (`self.mqtt`) when GATEWAY_MQTT_PORT is 0 (bound at start). */
  mqttPort?: number;
  /** Likewise for MQTT over TLS and secure WebSocket (GATEWAY_MQTTS_PORT, GATEWAY_WSS_PORT). */
  mqttsPort?: number;
  wssPort?: number;
  /** Withdraws a message from the self channel on `DELETE /v1/messages/:id` (recall). */
  recall?: (appId: string, messageId: string) => Promise<number>;
  /** What `/readyz` checks (the process's roles); database and Redis only when not given. */
  readiness?: Readiness;
  /** Self-channel presence, for pushes routed at accept time (services/direct-push.ts). */
  presence?: PresenceLookup;
}

/** The express app: public health/docs routes, then everything under /v1 behind a bearer key. */
export function createApi(ctx: Context, opts: ApiOptions = {}): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');

  app.use((req, res, next) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      httpRequests.observe({ method: req.method, route, status: String(res.statusCode) }, Number(process.hrtime.bigint() - start) / 1e9);
    });
    next();
  });

  app.use(healthRouter(ctx, opts.readiness));
  const auth = new Authenticator(ctx.repos.apps, ctx.secrets.adminToken);
  app.use(new ApiRateLimits(ctx.queues.pipelined, ctx.config, auth, ctx.secrets.deviceTokenSecret, ctx.logger).middleware());
  // Vendors and devices authenticate differently: these come before the bearer-key gate.
  app.use(receiptsRouter(ctx), eventsRouter(ctx, auth), inboxRouter(ctx, auth));
  app.use(dashboardRouter(), adminQueuesRouter(ctx.queues, auth, ctx.secrets.adminToken));
  const v1 = express.Router();
  v1.use(authenticate(auth, ctx.repos.apps));
  v1.use(express.json({ limit: ctx.config.MAX_BODY_BYTES, type: ['application/json', 'application/*+json'] }));
  // A body the JSON parser skipped (curl -d sends form encoding) would otherwise read as "no body"
  // and fail on its first required field, which says nothing about the real mistake.
  v1.use((req, _res, next) => {
    const hasBody = req.get('transfer-encoding') !== undefined || Number(req.get('content-length') ?? 0) > 0;
    if (hasBody && req.body === undefined) {
      next(new ApiError('unsupported_media_type', `send the body as JSON (Content-Type: application/json), not ${req.get('content-type') ?? 'no content type'}`));
      return;
    }
    next();
  });
  v1.use(appsRouter(ctx, auth), credentialsRouter(ctx), devicesRouter(ctx, { mqtt: opts.mqttPort, mqtts: opts.mqttsPort, wss: opts.wssPort }), messagesRouter(ctx, opts.recall, opts.presence), deliveriesRouter(ctx, opts.presence), statsRouter(ctx), campaignsRouter(ctx, opts.recall));
  v1.use(consoleRouter(ctx));
  app.use('/', (req, res, next) => (req.path.startsWith('/v1/') ? v1(req, res, next) : next()));

  app.use((req, _res, next) => next(new ApiError('not_found', `no route for ${req.method} ${req.path}`)));
  app.use(errorHandler(ctx.logger));
  return app;
}
