import { ConfigError, loadConfig, loadEnvFile } from './config.ts';
import { startGateway } from './gateway.ts';
import { createLogger, logFormat, type Logger } from './logger.ts';
import { migrate } from './persistence/migrator.ts';
import { createSql } from './persistence/sql.ts';
import { announceStart, startAddresses } from './start-banner.ts';
import { startTracing } from './tracing-export.ts';

// A developer's `.env` first: the configuration below reads what it sets (the environment still wins).
loadEnvFile();
let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`Invalid configuration: ${error.message}`);
  process.exit(1);
}

const terminal = process.stdout.isTTY === true;
const log = createLogger(config.LOG_LEVEL, undefined, logFormat(config.LOG_FORMAT, terminal));
// Before anything serves: off (no endpoint) it starts nothing.
const tracing = startTracing(config, log);
await migrateOnStart(config.DATABASE_URL, log);
const gateway = await startGateway(config, log);
announceStart(
  startAddresses({
    server: gateway.server,
    host: config.HOST,
    dashboardUrl: gateway.dashboardUrl,
    dashboardHost: config.DASHBOARD_HOST,
    replSocket: gateway.replSocket,
  }),
  { terminal, write: (text) => process.stdout.write(text), log },
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'shutting down');
    gateway
      .close()
      .then(() => tracing.shutdown())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  });
}

/**
 * Applies pending migrations before serving, so that `npm start` works on a fresh database. The runner
 * holds an advisory lock, so instances starting together migrate once. A database that is down now is
 * not fatal: the gateway starts, reports it in /health, and `npm run migrate` can follow.
 */
async function migrateOnStart(url: string, log: Logger): Promise<void> {
  const sql = createSql(url, { pool_max: 1, application_name: 'gateway-migrate-on-start' });
  try {
    const applied = await migrate(sql);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
  } catch (error) {
    log.error({ err: error }, 'could not migrate at start');
  } finally {
    await sql.end({ timeout: 5 });
  }
}
