import { ConfigError, loadTracingConfig } from '../config.ts';
import { createLogger, logFormat } from '../logger.ts';
import { startTracing } from '../tracing-export.ts';
import { BankConfigError, loadBankEnv, startSimulator } from '../simulator/simulator.ts';

let env;
let tracingConfig;
try {
  env = loadBankEnv(process.env);
  tracingConfig = loadTracingConfig(process.env, 'bank-simulator');
} catch (error) {
  if (!(error instanceof BankConfigError) && !(error instanceof ConfigError)) throw error;
  console.error(`Invalid configuration: ${error.message}`);
  process.exit(1);
}

const log = createLogger(env.log_level, undefined, logFormat(env.log_format, process.stdout.isTTY === true));
// The bank's own spans (a transfer's submit, its callback) join the gateway's traces through traceparent.
const tracing = startTracing(tracingConfig, log);
const simulator = await startSimulator(env, log);
log.info(
  { seed: simulator.seed, callback_url: env.callback_url, url: simulator.url },
  'bank simulator started; BANK_SEED replays it',
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'bank shutting down');
    simulator
      .close()
      .then(() => tracing.shutdown())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          log.error({ err: error }, 'bank shutdown failed');
          process.exit(1);
        },
      );
  });
}
