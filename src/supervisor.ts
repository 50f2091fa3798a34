import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { registry, type MetricsSnapshot } from './metrics.js';

/** The flag a forked worker process gets: no HTTP listener of its own, metrics over IPC. */
export const SUPERVISED_FLAG = '--supervised';
const METRICS = 'relay:metrics';

/** In a forked worker process: answers the supervisor's metrics requests with this process's registry. */
export function answerMetricsRequests(): void {
  process.on('message', (m: { type?: string; id?: number }) => {
    if (m?.type !== METRICS) return;
    void registry.getMetricsAsJSON().then((metrics) => process.send?.({ type: METRICS, id: m.id, metrics }));
  });
}

/** How many worker processes to fork: none on PGlite, whose data folder only one process may open. */
export function workerProcessCount(config: Config): number {
  if (!config.ROLES.includes('worker') || !config.DATABASE_URL) return 0;
  const n = config.WORKER_PROCESSES === 'auto' ? Math.min(availableParallelism(), 4) : config.WORKER_PROCESSES;
  return n > 1 ? n : 0;
}

/**
 * Runs the worker role in child processes, so provider clients, JSON and database work spread
 * over every core instead of sharing the API's event loop. A child that dies is restarted with
 * backoff; BullMQ's stalled-job check and the delivery leases hand its work to the others.
 */
export class WorkerSupervisor {
  private readonly children = new Set<ChildProcess>();
  private stopping = false;
  private requestId = 0;

  constructor(
    private readonly count: number,
    private readonly logger: Logger,
    /** MB of young generation per worker (`WORKER_SEMI_SPACE_MB`); 0 leaves V8's default. */
    private readonly semiSpaceMb = 0,
  ) {}

  start(): void {
    for (let i = 0; i < this.count; i++) this.spawn(i, 0);
  }

  private spawn(slot: number, failures: number): void {
    const started = Date.now();
    const child = fork(process.argv[1]!, [SUPERVISED_FLAG], {
      env: { ...process.env, ROLES: 'worker', WORKER_PROCESSES: '1' },
      execArgv: workerExecArgv(process.execArgv, this.semiSpaceMb),
      stdio: 'inherit',
    });
    this.children.add(child);
    child.on('exit', (code, signal) => {
      this.children.delete(child);
      if (this.stopping) return;
      const quick = Date.now() - started < 10_000;
      const next = quick ? failures + 1 : 0;
      const delay = Math.min(30_000, 500 * 2 ** next);
      this.logger.error({ slot, code, signal, restartInMs: delay }, 'worker process exited; restarting');
      setTimeout(() => this.spawn(slot, next), delay).unref();
    });
  }

  /** Worker processes running now (one that died counts again once restarted). */
  get alive(): number {
    return this.children.size;
  }

  /**
   * Every live worker process's metrics, asked over the IPC channel fork() opened; a process
   * that does not answer within `timeoutMs` (busy, or just restarted) is left out of this scrape.
   */
  async collectMetrics(timeoutMs = 2000): Promise<MetricsSnapshot[]> {
    const replies = await Promise.all(
      [...this.children].filter((c) => c.connected).map(
        (child) =>
          new Promise<MetricsSnapshot | undefined>((resolve) => {
            const id = ++this.requestId;
            const done = (v: MetricsSnapshot | undefined) => {
              clearTimeout(timer);
              child.off('message', onMessage);
              resolve(v);
            };
            const onMessage = (m: { type?: string; id?: number; metrics?: MetricsSnapshot }) => {
              if (m?.type === METRICS && m.id === id) done(m.metrics);
            };
            const timer = setTimeout(() => done(undefined), timeoutMs);
            child.on('message', onMessage);
            child.send({ type: METRICS, id }, (err) => err && done(undefined));
          }),
      ),
    );
    return replies.filter((r): r is MetricsSnapshot => r !== undefined);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.children].map(
        (child) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }
}

/** The worker's Node flags: the parent's, with the young generation sized unless already set. */
export function workerExecArgv(parent: readonly string[], semiSpaceMb: number): string[] {
  if (semiSpaceMb <= 0 || parent.some((a) => a.startsWith('--max-semi-space-size'))) return [...parent];
  return [...parent, `--max-semi-space-size=${semiSpaceMb}`];
}
