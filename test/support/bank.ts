import { Webhook } from 'standardwebhooks';
import { loadConfig } from '../../config.ts';
import { createLogger } from '../../logger.ts';
import { loadBankEnv, startSimulator } from '../../simulator/simulator.ts';
import { OBEDIENT_BANK } from './gateway.ts';

/** Gateway settings for a bank that settles in milliseconds and a worker that retries and polls as fast. */
export const FAST_BANK = {
  BANK_MIN_DELAY_MS: '5',
  BANK_MAX_DELAY_MS: '20',
  BANK_TIMEOUT_MS: '300',
  BANK_BACKOFF_BASE_MS: '10',
  BANK_BACKOFF_MAX_MS: '40',
  BANK_CALLBACK_DEADLINE_MS: '300',
  BANK_POLLS_MAX: '5',
  BANK_ATTEMPTS_MAX: '3',
  BANK_BREAKER_RESET_MS: '300',
};

/** The secret both sides use when nothing is configured. */
export const DEFAULT_SECRET = loadConfig({}).WEBHOOK_SECRETS[0]!;

/** A bank simulator of the test's own on a given port, calling back `callback_url`, with fast delays. */
export function startTestBank(port: number, callback_url: string, env: Record<string, string> = {}) {
  return startSimulator(
    loadBankEnv({
      BANK_HOST: '127.0.0.1',
      BANK_PORT: String(port),
      BANK_CALLBACK_URL: callback_url,
      BANK_MIN_DELAY_MS: '5',
      BANK_MAX_DELAY_MS: '20',
      ...OBEDIENT_BANK,
      BANK_SEED: 'test-bank',
      ...env,
    }),
    createLogger('silent'),
  );
}

/** A bank callback signed as the simulator signs them. */
export function signedCallback(
  payload: unknown,
  options: { id?: string; secret?: string; at?: Date } = {},
): { headers: Record<string, string>; raw: string } {
  const raw = JSON.stringify(payload);
  const id = options.id ?? `msg_${crypto.randomUUID()}`;
  const at = options.at ?? new Date();
  const signature = new Webhook(options.secret ?? DEFAULT_SECRET).sign(id, at, raw);
  return {
    raw,
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signature,
    },
  };
}

// Kept here too for the files that import it from here; the one implementation is in time.ts.
export { eventually } from './time.ts';
