import 'dotenv/config';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { startRelay } from './relay.js';

/** `npm start`: every role in one process; `ROLES=api,worker` (or `--roles=api`) runs a subset. */
async function main() {
  const flag = process.argv.find((a) => a.startsWith('--roles='));
  const env = flag ? { ...process.env, ROLES: flag.slice('--roles='.length) } : process.env;
  let config;
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
  const relay = await startRelay(config, logger, (line) => console.log(line));
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    relay.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(`relay: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
