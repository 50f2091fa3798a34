import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from './config.js';

/** The response header an API process puts on every answer when there are several of them. */
export const API_PROCESS_HEADER = 'relay-api-process';

/**
 * How many processes serve the API role: API_PROCESSES, else WEB_CONCURRENCY (the variable
 * Heroku-style platforms set), else 1. PGlite's data folder opens in one process only, so the
 * embedded database keeps one.
 */
export function apiProcessCount(config: Config, env: NodeJS.ProcessEnv = process.env): number {
  if (!config.ROLES.includes('api') || !config.DATABASE_URL) return 1;
  const raw = config.API_PROCESSES ?? (env.WEB_CONCURRENCY ? Number(env.WEB_CONCURRENCY) : 1);
  return Number.isInteger(raw) && raw > 1 ? Math.min(raw, 64) : 1;
}

/**
 * The API role in N processes with node:cluster: the primary owns the listening socket on PORT
 * and hands connections round-robin to its API workers (https://nodejs.org/api/cluster.html#how-it-works),
 * so a request's JSON, validation and database round trips spread over the cores. Other roles
 * stay in the primary (and the worker role in its own forks). An API process that dies is
 * restarted with backoff; stop() drains them all: each closes its server, finishing the requests
 * in hand, before it exits.
 */
export class ApiCluster {
  private readonly workers = new Set<Worker>();
  private stopping = false;

  constructor(
    private readonly count: number,
    private readonly logger: Logger,
  ) {}

  start(): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.count; i++) ready.push(this.spawn(i, 0));
    return Promise.all(ready).then(() => undefined);
  }

  private spawn(slot: number, failures: number): Promise<void> {
    const started = Date.now();
    const worker = cluster.fork({ ROLES: 'api', WORKER_PROCESSES: '1', API_PROCESSES: '1', RELAY_API_PROCESS: String(slot + 1) });
    this.workers.add(worker);
    worker.on('exit', (code, signal) => {
      this.workers.delete(worker);
      if (this.stopping) return;
      const next = Date.now() - started < 10_000 ? failures + 1 : 0;
      const delay = Math.min(30_000, 500 * 2 ** next);
      this.logger.error({ slot, code, signal, restartInMs: delay }, 'API process exited; restarting');
      setTimeout(() => void this.spawn(slot, next), delay).unref();
    });
    return new Promise<void>((resolve) => {
      worker.once('listening', () => resolve());
      worker.once('exit', () => resolve());
    });
  }

  get alive(): number {
    return this.workers.size;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.workers].map(
        (w) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => w.process.kill('SIGKILL'), 15_000);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            // SIGTERM, not disconnect(): the process runs its own drain (main.ts shutdown).
            w.process.kill('SIGTERM');
          }),
      ),
    );
  }
}

export const isApiWorker = (): boolean => cluster.isWorker;
