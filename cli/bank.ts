import { createLogger, logFormat } from '../logger.ts';
import { BankConfigError, loadBankEnv, startSimulator } from '../simulator/simulator.ts';

let env;
try {
  env = loadBankEnv(process.env);
} catch (error) {
  if (!(error instanceof BankConfigError)) throw error;
  console.error(`Invalid configuration: ${error.message}`);
  process.exit(1);
}

const log = createLogger(env.log_level, undefined, logFormat(env.log_format, process.stdout.isTTY === true));
const simulator = await startSimulator(env, log);
log.info(
  { seed: simulator.seed, callback_url: env.callback_url, url: simulator.url },
  'bank simulator started; BANK_SEED replays it',
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'bank shutting down');
    simulator.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'bank shutdown failed');
        process.exit(1);
      },
    );
  });
}
