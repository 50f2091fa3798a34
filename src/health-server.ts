import type { IncomingMessage, ServerResponse } from 'node:http';
import { metricsContentType, renderMetrics } from './metrics.js';
import type { Readiness } from './readiness.js';

/**
 * `/healthz`, `/readyz` and `/metrics` for a process without the API (gateway-only, worker-only,
 * scheduler-only), on plain node:http: the same answers the API's health routes give. Returns
 * false for any other path, so the caller can answer it (the gateway serves MQTT over WebSocket).
 */
export function serveHealth(readiness: Readiness) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (path === '/healthz') json(200, { status: 'ok' });
    else if (path === '/readyz') void readiness.report().then((r) => json(r.ready ? 200 : 503, r.body));
    else if (path === '/metrics') {
      renderMetrics().then(
        (text) => res.writeHead(200, { 'content-type': metricsContentType }).end(text),
        () => json(500, { error: { code: 'internal', message: 'metrics unavailable', details: null } }),
      );
    } else return false;
    return true;
  };
}
