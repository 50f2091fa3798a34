import { Router } from 'express';
import express from 'express';
import { Gauge } from 'prom-client';
import swaggerUiPath from 'swagger-ui-dist/absolute-path.js';
import type { Context } from '../../context.js';
import { metricsContentType, registry, renderMetrics } from '../../metrics.js';
import { coreReadiness, type Readiness } from '../../readiness.js';
import { openapiDocument } from '../openapi.js';

const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Relay API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>`;

/** Liveness, readiness, Prometheus metrics and the API's own documentation; no auth. */
export function healthRouter(ctx: Context, readiness?: Readiness): Router {
  const r = Router();

  const depth = new Gauge({
    name: 'relay_queue_jobs',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'] as const,
    registers: [],
    async collect() {
      // Bulk send jobs wait as 'prioritized' (per-app fairness, src/core/fair-share.ts).
      const states = ['waiting', 'prioritized', 'active', 'delayed', 'failed'] as const;
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

  const ready = readiness ?? coreReadiness(ctx);
  r.get('/readyz', async (_req, res) => {
    const report = await ready.report();
    res.status(report.ready ? 200 : 503).json(report.body);
  });

  r.get('/metrics', async (_req, res) => {
    res.type(metricsContentType).send(await renderMetrics());
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
