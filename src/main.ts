import 'dotenv/config';
import { loadSecrets } from './bootstrap.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { ensureRedis } from './redis.js';
import { startRelay } from './relay.js';
import { addMetricsSource } from './metrics.js';
import { ApiCluster, apiProcessCount, isApiWorker } from './api-cluster.js';
import { SUPERVISED_FLAG, WorkerSupervisor, answerMetricsRequests, workerProcessCount } from './supervisor.js';

/**
 * `npm start`: every role; `ROLES=api,worker` (or `--roles=api`) runs a subset. With PostgreSQL,
 * the worker role runs in forked processes (WORKER_PROCESSES), the other roles in this one.
 */
async function main() {
  const flag = process.argv.find((a) => a.startsWith('--roles='));
  const env = flag ? { ...process.env, ROLES: flag.slice('--roles='.length) } : process.env;
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL);
  const announce = (line: string) => console.log(line);
  if (isApiWorker()) return runApiProcess(config, logger, announce);
  const forks = workerProcessCount(config);
  const apiProcesses = apiProcessCount(config);
  const localRoles = config.ROLES.filter((r) => !(r === 'worker' && forks > 0) && !(r === 'api' && apiProcesses > 1));

  // Secrets and Redis first, so forked workers find both ready instead of racing to create them.
  loadSecrets(config, announce);
  const redis = forks > 0 || apiProcesses > 1 ? await ensureRedis(config.REDIS_URL, config.DATA_DIR, logger, config.REDIS_CLUSTER_NODES) : undefined;
  if (forks > 0) logger.info({ workerProcesses: forks }, 'starting worker processes');
  // A forked worker answers health and metrics through its supervisor; the supervisor's process
  // runs the other roles, or only health and metrics when the worker role is all it was given.
  const supervised = process.argv.includes(SUPERVISED_FLAG);
  if (supervised) answerMetricsRequests();
  const supervisor = forks > 0 ? new WorkerSupervisor(forks, logger, config.WORKER_SEMI_SPACE_MB) : undefined;
  if (supervisor) addMetricsSource(() => supervisor.collectMetrics());
  const apis = apiProcesses > 1 ? new ApiCluster(apiProcesses, logger) : undefined;
  const checks = {
    ...(supervisor ? { workerProcesses: () => (supervisor.alive > 0 ? 'ok' : `0 of ${forks} worker processes running`) } : {}),
    ...(apis ? { apiProcesses: () => (apis.alive > 0 ? 'ok' : `0 of ${apiProcesses} API processes running`) } : {}),
  };
  // With several API processes they own PORT; this process's own HTTP (health, metrics, the
  // gateway's MQTT over WebSocket) moves to HEALTH_PORT, by default the next port.
  const ownPort = apis ? (config.HEALTH_PORT ?? (config.PORT === 0 ? 0 : config.PORT + 1)) : config.PORT;
  // With no role left here (all forked), this process still answers health and metrics.
  const relay = await startRelay({ ...config, ROLES: localRoles, PORT: ownPort }, logger, announce, { listen: !supervised, checks });
  supervisor?.start();
  if (apis) {
    logger.info({ apiProcesses, port: config.PORT }, 'starting API processes');
    await apis.start();
  }

  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    // Each worker drains: BullMQ's close() lets the jobs in hand finish and write their outcomes.
    Promise.all([apis?.stop(), supervisor?.stop(), relay.stop()])
      .then(() => redis?.stop())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

/** One of several API processes (a node:cluster worker): the API role, drained on SIGTERM. */
async function runApiProcess(config: Config, logger: ReturnType<typeof createLogger>, announce: (line: string) => void) {
  const relay = await startRelay({ ...config, ROLES: ['api'] }, logger, announce, { apiProcess: process.env.RELAY_API_PROCESS ?? '1' });
  const shutdown = () => {
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    // Closing the server finishes the requests in hand; then the process exits.
    relay.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'API process shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  console.error(`relay: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
