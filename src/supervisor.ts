import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from './config.js';

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
    const child = fork(process.argv[1]!, [], {
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
