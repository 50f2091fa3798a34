import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';

/** One registry per process; every role adds to it and `/metrics` serves it. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });
export const metricsContentType = registry.contentType;

export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];
const sources: Array<() => Promise<MetricsSnapshot[]>> = [];

/** Adds other processes' metrics to this one's `/metrics` (the supervisor's forked workers). */
export function addMetricsSource(source: () => Promise<MetricsSnapshot[]>): void {
  sources.push(source);
}

/**
 * This process's metrics, summed with those of its sources the way prom-client aggregates a
 * cluster (counters and histograms add up; see AggregatorRegistry in
 * https://github.com/siimon/prom-client#usage-with-nodejss-cluster-module), so one scrape of the
 * parent counts every worker process's deliveries.
 */
export async function renderMetrics(): Promise<string> {
  if (sources.length === 0) return registry.metrics();
  const others = (await Promise.all(sources.map((s) => s()))).flat();
  const own = (await registry.getMetricsAsJSON()) as MetricsSnapshot;
  return AggregatorRegistry.aggregate([own, ...others]).metrics();
}

export const httpRequests = new Histogram({
  name: 'relay_http_request_duration_seconds',
  help: 'API request duration by route and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
  registers: [registry],
});

export const deliveryOutcomes = new Counter({
  name: 'relay_delivery_outcomes_total',
  help: 'Send attempts by channel and outcome (sent, retry, invalid, failed, expired)',
  labelNames: ['channel', 'outcome'] as const,
  registers: [registry],
});

export const providerLatency = new Histogram({
  name: 'relay_provider_batch_seconds',
  help: 'Time one provider batch took, by channel',
  labelNames: ['channel'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

/** Self-channel gateway: sockets and authenticated device sessions on this node. */
export function registerGatewayMetrics(counts: () => { connections: number; online: number }): void {
  if (registry.getSingleMetric('relay_gateway_connections')) registry.removeSingleMetric('relay_gateway_connections');
  registry.registerMetric(
    new Gauge({
      name: 'relay_gateway_connections',
      help: 'Self-channel connections on this node, by state (open sockets, authenticated device sessions)',
      labelNames: ['state'] as const,
      registers: [],
      collect() {
        const c = counts();
        this.set({ state: 'open' }, c.connections);
        this.set({ state: 'online' }, c.online);
      },
    }),
  );
}
