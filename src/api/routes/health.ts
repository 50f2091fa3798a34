import { Router } from 'express';
import express from 'express';
import { Gauge } from 'prom-client';
import swaggerUiPath from 'swagger-ui-dist/absolute-path.js';
import { ping } from '../../db/database.js';
import type { Context } from '../../context.js';
import { registry } from '../../metrics.js';
import { openapiDocument } from '../openapi.js';

const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Relay API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>`;

/** Liveness, readiness, Prometheus metrics and the API's own documentation; no auth. */
export function healthRouter(ctx: Context): Router {
  const r = Router();

  const depth = new Gauge({
    name: 'relay_queue_jobs',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'] as const,
    registers: [],
    async collect() {
      const states = ['waiting', 'active', 'delayed', 'failed'] as const;
      for (const q of ctx.queues.all()) {
        const c = await q.getJobCounts(...states);
        for (const s of states) this.set({ queue: q.name, state: s }, c[s] ?? 0);
      }
    },
  });
  if (!registry.getSingleMetric('relay_queue_jobs')) registry.registerMetric(depth);

  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  r.get('/readyz', async (_req, res) => {
    const checks: Record<string, string> = {};
    await Promise.all([
      ping(ctx.db).then(() => (checks.database = 'ok'), (e: Error) => (checks.database = e.message)),
      ctx.queues.connection.ping().then(() => (checks.redis = 'ok'), (e: Error) => (checks.redis = e.message)),
    ]);
    const ok = Object.values(checks).every((v) => v === 'ok');
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks });
  });

  r.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });

  r.get('/openapi.json', (req, res) => {
    res.json(openapiDocument(`${req.protocol}://${req.get('host')}`));
  });
  r.get('/docs', (_req, res) => {
    res.type('html').send(DOCS_HTML);
  });
  r.get('/docs/init.js', (_req, res) => {
    res.type('application/javascript').send("SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui', deepLinking: true });");
  });
  r.use('/docs/assets', express.static(swaggerUiPath(), { index: false }));
  return r;
}
