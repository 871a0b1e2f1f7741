import { z } from 'zod';
import type { Logger } from '../logger.ts';
import { createBank } from './bank.ts';
import { startBankServer } from './bank-server.ts';
import { createCallbackSender } from './callback-sender.ts';
import { BANK_DEFAULTS, createScenarios, DEFAULT_RATES, type Rates } from './scenarios.ts';

/** A bank variable with a bad value: names it, so that the process can say which. */
export class BankConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'BankConfigError';
    this.variable = variable;
  }
}

/** Everything the simulator needs, typed: the gateway builds it from its own configuration. */
export interface SimulatorOptions {
  host: string;
  port: number;
  callback_url: string;
  /** Signs the callbacks (the first of WEBHOOK_SECRETS; the gateway accepts them all). */
  signing_secret: string;
  delay_ms_min: number;
  delay_ms_max: number;
  /** How long a transfer request may hold its answer in the "timeout" scenario. */
  hold_ms: number;
  seed: string;
  rates: Rates;
}

const rate = (fallback: number) => z.coerce.number().min(0).max(1).default(fallback);
const delay_ms = (fallback: number) => z.coerce.number().int().min(0).max(600_000).default(fallback);

const schema = z.object({
  BANK_HOST: z.string().min(1).default('0.0.0.0'),
  BANK_PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  BANK_CALLBACK_URL: z.url().default('http://127.0.0.1:3000/webhooks/bank-callback'),
  WEBHOOK_SECRETS: z
    .string()
    .default(BANK_DEFAULTS.webhook_secret)
    .transform((value) => value.split(',').map((secret) => secret.trim()))
    .pipe(z.array(z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/, 'each secret must look like whsec_<base64>')).min(1)),
  BANK_MIN_DELAY_MS: delay_ms(BANK_DEFAULTS.delay_ms_min),
  BANK_MAX_DELAY_MS: delay_ms(BANK_DEFAULTS.delay_ms_max),
  BANK_HOLD_MS: z.coerce.number().int().min(1).max(600_000).default(30_000),
  BANK_SEED: z.string().default(''),
  BANK_SUCCESS_RATE: rate(DEFAULT_RATES.success),
  BANK_TIMEOUT_RATE: rate(DEFAULT_RATES.timeout),
  BANK_UNAVAILABLE_RATE: rate(DEFAULT_RATES.unavailable),
  BANK_INVALID_RATE: rate(DEFAULT_RATES.invalid),
  BANK_INSUFFICIENT_FUNDS_RATE: rate(DEFAULT_RATES.insufficient_funds),
  BANK_DUPLICATE_CALLBACK_RATE: rate(DEFAULT_RATES.duplicate_callback),
  BANK_LOST_CALLBACK_RATE: rate(DEFAULT_RATES.lost_callback),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['pretty', 'json']).optional(),
});

/** The simulator's options from its environment (`npm run bank`), parsed with zod; a bad value throws a BankConfigError naming it. */
export function loadBankEnv(env: NodeJS.ProcessEnv) {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BankConfigError(String(issue?.path[0] ?? 'environment'), issue?.message ?? 'invalid');
  }
  const values = parsed.data;
  if (values.BANK_MIN_DELAY_MS > values.BANK_MAX_DELAY_MS) {
    throw new BankConfigError('BANK_MIN_DELAY_MS', 'must not be greater than BANK_MAX_DELAY_MS');
  }
  if (values.BANK_TIMEOUT_RATE + values.BANK_UNAVAILABLE_RATE + values.BANK_INVALID_RATE > 1) {
    throw new BankConfigError(
      'BANK_TIMEOUT_RATE',
      'with BANK_UNAVAILABLE_RATE and BANK_INVALID_RATE must add up to ≤ 1',
    );
  }
  if (values.BANK_DUPLICATE_CALLBACK_RATE + values.BANK_LOST_CALLBACK_RATE > 1) {
    throw new BankConfigError('BANK_DUPLICATE_CALLBACK_RATE', 'with BANK_LOST_CALLBACK_RATE must add up to ≤ 1');
  }
  const options: SimulatorOptions = {
    host: values.BANK_HOST,
    port: values.BANK_PORT,
    callback_url: values.BANK_CALLBACK_URL,
    signing_secret: values.WEBHOOK_SECRETS[0]!,
    delay_ms_min: values.BANK_MIN_DELAY_MS,
    delay_ms_max: values.BANK_MAX_DELAY_MS,
    hold_ms: values.BANK_HOLD_MS,
    seed: values.BANK_SEED,
    rates: {
      success: values.BANK_SUCCESS_RATE,
      timeout: values.BANK_TIMEOUT_RATE,
      unavailable: values.BANK_UNAVAILABLE_RATE,
      invalid: values.BANK_INVALID_RATE,
      insufficient_funds: values.BANK_INSUFFICIENT_FUNDS_RATE,
      duplicate_callback: values.BANK_DUPLICATE_CALLBACK_RATE,
      lost_callback: values.BANK_LOST_CALLBACK_RATE,
    },
  };
  return { ...options, log_level: values.LOG_LEVEL, log_format: values.LOG_FORMAT };
}

/** The whole simulator (scenarios, bank actors, callback sender, HTTP server), in this process. */
export async function startSimulator(
  options: SimulatorOptions,
  log: Logger,
): Promise<{ url: string; seed: string; close(): Promise<void> }> {
  const scenarios = createScenarios({
    seed: options.seed,
    delay_ms_min: options.delay_ms_min,
    delay_ms_max: options.delay_ms_max,
    rates: options.rates,
  });
  const sender = createCallbackSender({ url: options.callback_url, secret: options.signing_secret, log });
  const bank = createBank({ scenarios, callbacks: sender, log });
  const server = await startBankServer({
    port: options.port,
    host: options.host,
    bank,
    log,
    hold_ms: options.hold_ms,
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
