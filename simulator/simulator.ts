import { z } from 'zod';
import { ConfigError, loadConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { createBank } from './bank.ts';
import { startBankServer } from './bank-server.ts';
import { createCallbackSender } from './callback-sender.ts';
import { createScenarios, DEFAULT_RATES } from './scenarios.ts';

// The variables the gateway shares with the bank take the gateway's defaults, so that a fresh machine
// signs and verifies callbacks with the same secret.
const shared = loadConfig({});

const rate = (fallback: number) => z.coerce.number().min(0).max(1).default(fallback);
const delay_ms = (fallback: number) => z.coerce.number().int().min(0).max(600_000).default(fallback);

const schema = z.object({
  BANK_HOST: z.string().min(1).default('0.0.0.0'),
  BANK_PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  BANK_CALLBACK_URL: z.url().default('http://127.0.0.1:3000/webhooks/bank-callback'),
  WEBHOOK_SECRETS: z
    .string()
    .default(shared.WEBHOOK_SECRETS.join(','))
    .transform((value) => value.split(',').map((secret) => secret.trim()))
    .pipe(z.array(z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/, 'each secret must look like whsec_<base64>')).min(1)),
  BANK_MIN_DELAY_MS: delay_ms(shared.BANK_MIN_DELAY_MS),
  BANK_MAX_DELAY_MS: delay_ms(shared.BANK_MAX_DELAY_MS),
  BANK_HOLD_MS: z.coerce.number().int().min(1).max(600_000).default(30_000),
  BANK_SEED: z.string().default(''),
  BANK_SUCCESS_RATE: rate(shared.BANK_SUCCESS_RATE),
  BANK_TIMEOUT_RATE: rate(DEFAULT_RATES.timeout),
  BANK_UNAVAILABLE_RATE: rate(DEFAULT_RATES.unavailable),
  BANK_INVALID_RATE: rate(DEFAULT_RATES.invalid),
  BANK_INSUFFICIENT_FUNDS_RATE: rate(DEFAULT_RATES.insufficient_funds),
  BANK_DUPLICATE_CALLBACK_RATE: rate(DEFAULT_RATES.duplicate_callback),
  BANK_LOST_CALLBACK_RATE: rate(DEFAULT_RATES.lost_callback),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** The simulator's environment, parsed with zod; a bad value throws a ConfigError naming it. */
export function loadBankEnv(env: NodeJS.ProcessEnv) {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue?.path[0] ?? 'environment'), issue?.message ?? 'invalid');
  }
  const values = parsed.data;
  if (values.BANK_MIN_DELAY_MS > values.BANK_MAX_DELAY_MS) {
    throw new ConfigError('BANK_MIN_DELAY_MS', 'must not be greater than BANK_MAX_DELAY_MS');
  }
  if (values.BANK_TIMEOUT_RATE + values.BANK_UNAVAILABLE_RATE + values.BANK_INVALID_RATE > 1) {
    throw new ConfigError('BANK_TIMEOUT_RATE', 'with BANK_UNAVAILABLE_RATE and BANK_INVALID_RATE must add up to ≤ 1');
  }
  if (values.BANK_DUPLICATE_CALLBACK_RATE + values.BANK_LOST_CALLBACK_RATE > 1) {
    throw new ConfigError('BANK_DUPLICATE_CALLBACK_RATE', 'with BANK_LOST_CALLBACK_RATE must add up to ≤ 1');
  }
  return values;
}

export type BankEnv = ReturnType<typeof loadBankEnv>;

/** The whole simulator (scenarios, bank actors, callback sender, HTTP server), in this process. */
export async function startSimulator(
  env: BankEnv,
  log: Logger,
): Promise<{ url: string; seed: string; close(): Promise<void> }> {
  const scenarios = createScenarios({
    seed: env.BANK_SEED,
    delay_ms_min: env.BANK_MIN_DELAY_MS,
    delay_ms_max: env.BANK_MAX_DELAY_MS,
    rates: {
      success: env.BANK_SUCCESS_RATE,
      timeout: env.BANK_TIMEOUT_RATE,
      unavailable: env.BANK_UNAVAILABLE_RATE,
      invalid: env.BANK_INVALID_RATE,
      insufficient_funds: env.BANK_INSUFFICIENT_FUNDS_RATE,
      duplicate_callback: env.BANK_DUPLICATE_CALLBACK_RATE,
      lost_callback: env.BANK_LOST_CALLBACK_RATE,
    },
  });
  // The first secret signs; the gateway accepts every secret of its list while they rotate.
  const sender = createCallbackSender({ url: env.BANK_CALLBACK_URL, secret: env.WEBHOOK_SECRETS[0]!, log });
  const bank = createBank({ scenarios, callbacks: sender, log });
  const server = await startBankServer({
    port: env.BANK_PORT,
    host: env.BANK_HOST,
    bank,
    log,
    hold_ms: env.BANK_HOLD_MS,
  });
  return {
    url: server.url,
    seed: scenarios.seed,
    async close() {
      await server.close();
      bank.stop();
      await sender.stop();
    },
  };
}
