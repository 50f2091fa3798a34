import type { Context } from './context.js';
import { ping } from './db/database.js';

/**
 * `/readyz` of every role: named checks, each answering 'ok' or why not. The database and Redis
 * checks come with every process; roles add theirs (worker: its BullMQ workers run; supervisor:
 * a worker process is alive; any role: not draining after SIGTERM), so a load balancer or an
 * orchestrator stops routing to a process that is shutting down or cannot work.
 */
export type ReadinessCheck = () => Promise<string> | string;

export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();

  add(name: string, check: ReadinessCheck): this {
    this.checks.set(name, check);
    return this;
  }

  async report(): Promise<{ ready: boolean; body: { status: 'ready' | 'not ready'; checks: Record<string, string> } }> {
    const results = await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        try {
          return [name, await check()] as const;
        } catch (err) {
          return [name, err instanceof Error ? err.message : String(err)] as const;
        }
      }),
    );
    const checks = Object.fromEntries(results);
    const ready = Object.values(checks).every((v) => v === 'ok');
    return { ready, body: { status: ready ? 'ready' : 'not ready', checks } };
  }
}

/** The checks every process has: PostgreSQL and Redis answer. */
export function coreReadiness(ctx: Context): Readiness {
  return new Readiness().add('database', () => ping(ctx.db).then(() => 'ok')).add('redis', () => ctx.queues.connection.ping().then(() => 'ok'));
}
