import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { BANK_DEFAULTS, DEFAULT_RATES } from './simulator/scenarios.ts';

/**
 * Defaults of bounds that modules also apply when built without the configuration (the engine's tests):
 * kept here, where the configuration is, and imported by those modules.
 */
/** Appends waiting for a commit (not counting the batches in flight) before the journal answers `busy`. */
export const QUEUE_APPENDS_MAX_DEFAULT = 10_000;
/** Live actors at most: about 520 MB at the 5.2 KiB per actor bench/RESULTS.md measures. */
export const ACTORS_LIVE_MAX_DEFAULT = 100_000;
/** Payment workers in flight at most; the open-payment sweep drives the rest later. */
export const WORKERS_MAX_DEFAULT = 10_000;

/** Thrown when an environment variable has a value the service cannot run with. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

const integer = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const list = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value) =>
      value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0),
    );

/**
 * Tracing (OpenTelemetry over OTLP/HTTP), by the standard variables' names and meanings. Off unless an
 * endpoint is set: then no SDK starts and every span is the API's no-op (tracing.ts).
 */
const tracingVariables = {
  // The collector's base URL; traces go to <base>/v1/traces (e.g. Jaeger's OTLP port, http://localhost:4318).
  OTEL_EXPORTER_OTLP_ENDPOINT: z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''),
  // The traces URL itself, used as it is; wins over the base URL.
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''),
  // The service's name on its spans (the bank process defaults to bank-simulator).
  OTEL_SERVICE_NAME: z.string().min(1).max(100).default('payment-gateway'),
  OTEL_TRACES_SAMPLER: z
    .enum([
      'always_on',
      'always_off',
      'traceidratio',
      'parentbased_always_on',
      'parentbased_always_off',
      'parentbased_traceidratio',
    ])
    .default('parentbased_always_on'),
  // The ratio of the *traceidratio samplers, 0 to 1.
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).default(1),
};

const tracingSchema = z.object(tracingVariables);

/** The tracing settings (OTEL_*), typed. */
export type TracingConfig = Readonly<z.infer<typeof tracingSchema>>;

/**
 * The tracing settings alone, for a process that reads no other variable of the gateway's (the bank
 * simulator, `npm run bank`), with its own default service name.
 */
export function loadTracingConfig(env: NodeJS.ProcessEnv, service_name: string): TracingConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = tracingSchema.safeParse({ OTEL_SERVICE_NAME: service_name, ...present });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue?.path[0] ?? 'environment'), issue?.message ?? 'invalid');
  }
  return Object.freeze(parsed.data);
}

const schema = z.object({
  PORT: integer(3000, 0, 65535),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/postgres'),
  DATABASE_POOL_MAX: integer(10, 1, 200),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  ADMIN_API_KEY: z.string().min(16).max(256).default('admin_local_dev_key_change_me'),
  WEBHOOK_SECRETS: list(BANK_DEFAULTS.webhook_secret).pipe(
    z.array(z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/, 'each secret must look like whsec_<base64>')).min(1),
  ),
  BANK_URL: z.union([z.literal(''), z.url()]).default(''),
  BANK_MIN_DELAY_MS: integer(BANK_DEFAULTS.delay_ms_min, 0, 600_000),
  BANK_MAX_DELAY_MS: integer(BANK_DEFAULTS.delay_ms_max, 0, 600_000),
  BANK_SUCCESS_RATE: z.coerce.number().min(0).max(1).default(DEFAULT_RATES.success),
  BANK_SEED: z.string().default(''),
  // The in-process simulator's failure rates (BANK_URL empty); a separate bank reads its own.
  BANK_TIMEOUT_RATE: z.coerce.number().min(0).max(1).default(DEFAULT_RATES.timeout),
  BANK_UNAVAILABLE_RATE: z.coerce.number().min(0).max(1).default(DEFAULT_RATES.unavailable),
  BANK_INVALID_RATE: z.coerce.number().min(0).max(1).default(DEFAULT_RATES.invalid),
  BANK_INSUFFICIENT_FUNDS_RATE: z.coerce.number().min(0).max(1).default(DEFAULT_RATES.insufficient_funds),
  BANK_DUPLICATE_CALLBACK_RATE: z.coerce.number().min(0).max(1).default(DEFAULT_RATES.duplicate_callback),
  BANK_LOST_CALLBACK_RATE: z.coerce.number().min(0).max(1).default(DEFAULT_RATES.lost_callback),
  BANK_TIMEOUT_MS: integer(5000, 10, 120_000),
  BANK_ATTEMPTS_MAX: integer(8, 1, 100),
  BANK_BACKOFF_BASE_MS: integer(500, 1, 600_000),
  BANK_BACKOFF_MAX_MS: integer(60_000, 1, 3_600_000),
  BANK_CALLBACK_DEADLINE_MS: integer(30_000, 10, 3_600_000),
  BANK_POLLS_MAX: integer(20, 1, 10_000),
  BANK_BREAKER_RESET_MS: integer(10_000, 10, 600_000),
  BANK_CALLS_IN_FLIGHT_MAX: integer(64, 1, 10_000),
  SHARDS: integer(64, 1, 4096),
  // Names the instance in the cluster (Redis keys, the shard table, forwarded requests): unique per process.
  INSTANCE_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'letters, digits, dot, dash and underscore, at most 100')
    .default(
      `${hostname()
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .slice(0, 80)}-${process.pid}`,
    ),
  // Where the other instances reach this one; default http://<HOST or the hostname>:<PORT>.
  INTERNAL_URL: z.url({ protocol: /^https?$/ }).optional(),
  SHARD_LEASE_MS: integer(5000, 300, 600_000),
  SHARD_WAIT_MS: integer(2000, 0, 60_000),
  FORWARD_TIMEOUT_MS: integer(10_000, 100, 120_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Readable lines or JSON; default: readable when stdout is a terminal, JSON otherwise (logger.ts).
  LOG_FORMAT: z.enum(['pretty', 'json']).optional(),
  DASHBOARD_PORT: integer(5555, 0, 65535),
  // The dashboard has no login of its own: loopback unless a deployment says otherwise (compose does).
  DASHBOARD_HOST: z.string().min(1).default('127.0.0.1'),
  // Host names the dashboard answers besides loopback and its own address (compose reaches it by service name).
  DASHBOARD_ALLOWED_HOSTS: list('').pipe(
    z.array(z.string().regex(/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/, 'host names or [IPv6] literals, without a port')),
  ),
  // Default: defaultReplSocket(INSTANCE_ID), filled in by loadConfig.
  REPL_SOCKET: z.string().optional(),
  RATE_LIMIT_GLOBAL_PER_MIN: integer(1000, 1, 100_000_000),
  RATE_LIMIT_BALANCE_PER_MIN: integer(10, 1, 100_000_000),
  RATE_LIMIT_TRANSACTIONS_PER_MIN: integer(20, 1, 100_000_000),
  RATE_LIMIT_AUTH_FAILURES_PER_MIN: integer(20, 1, 100_000_000),
  // How long a user's API key found in Postgres is trusted without asking again (0: ask every time).
  AUTH_CACHE_TTL_MS: integer(5000, 0, 60_000),
  REDIS_KEY_PREFIX: z.string().max(100).default('pgw:'),
  IDEMPOTENCY_TTL_HOURS: integer(24, 24, 24 * 365),
  CORS_ORIGINS: list(''),
  CURRENCIES: list('USD,EUR,GBP').pipe(z.array(z.string().regex(/^[A-Z]{3}$/, 'ISO 4217 codes, e.g. USD,EUR')).min(1)),
  BODY_SIZE_MAX_BYTES: integer(64 * 1024, 1024, 10 * 1024 * 1024),
  HEALTH_TIMEOUT_MS: integer(1000, 50, 30_000),
  // How long a client may take to send its headers, and its whole request; then 408 request_timeout.
  HTTP_HEADERS_TIMEOUT_MS: integer(10_000, 100, 600_000),
  HTTP_REQUEST_TIMEOUT_MS: integer(30_000, 100, 3_600_000),
  SHUTDOWN_TIMEOUT_MS: integer(10_000, 100, 120_000),
  JOURNAL_BATCH_SIZE_MAX: integer(256, 1, 10_000),
  JOURNAL_BATCH_WAIT_MS: integer(1, 0, 1000),
  SNAPSHOT_EVERY_EVENTS: integer(100, 1, 1_000_000),
  ACTOR_IDLE_MS: integer(60_000, 100, 86_400_000),
  ACTOR_MAILBOX_MAX: integer(1000, 1, 1_000_000),
  ACTOR_ASK_TIMEOUT_MS: integer(5000, 100, 120_000),
  // Every request is answered within this long, whatever Postgres or Redis do (503 after it).
  REQUEST_DEADLINE_MS: integer(8000, 200, 120_000),
  // How often each instance hands the open transactions of its shards that have no worker to one.
  OPEN_PAYMENT_SWEEP_MS: integer(30_000, 100, 3_600_000),
  // Appends waiting for a journal commit; past it a write is refused at once (503 account_busy).
  JOURNAL_QUEUE_APPENDS_MAX: integer(QUEUE_APPENDS_MAX_DEFAULT, 1, 1_000_000),
  // Live account actors; when full the least recently used idle one is evicted, or 503 account_busy.
  ACTORS_LIVE_MAX: integer(ACTORS_LIVE_MAX_DEFAULT, 1, 10_000_000),
  // Payments driven at once; past it a transaction waits for the open-payment sweep.
  PAYMENT_WORKERS_MAX: integer(WORKERS_MAX_DEFAULT, 1, 1_000_000),
  // Merchant webhooks (README, "Merchant webhooks"). Off by default, and on in production never:
  // `http` URLs and loopback, private and link-local addresses, for local use and tests.
  MERCHANT_WEBHOOKS_ALLOW_PRIVATE: z
    .enum(['true', 'false'])
    .default('false')
    .transform((value) => value === 'true'),
  // How often an idle instance looks for due deliveries, and how many it sends at once.
  MERCHANT_WEBHOOKS_POLL_MS: integer(1000, 10, 60_000),
  MERCHANT_WEBHOOKS_IN_FLIGHT_MAX: integer(32, 1, 10_000),
  MERCHANT_WEBHOOKS_SOCKETS_PER_ORIGIN: integer(4, 1, 1000),
  // One attempt: a new connection within the first, the whole answer within the second.
  MERCHANT_WEBHOOKS_CONNECT_TIMEOUT_MS: integer(3000, 10, 60_000),
  MERCHANT_WEBHOOKS_TIMEOUT_MS: integer(10_000, 10, 120_000),
  // Retries: exponential backoff with full jitter from the base up to the cap, for a round of at most
  // this many attempts or this long (about 3 days), then the delivery is failed.
  MERCHANT_WEBHOOKS_RETRY_BASE_MS: integer(10_000, 1, 3_600_000),
  MERCHANT_WEBHOOKS_RETRY_MAX_MS: integer(3_600_000, 1, 86_400_000),
  MERCHANT_WEBHOOKS_ATTEMPTS_MAX: integer(100, 1, 10_000),
  MERCHANT_WEBHOOKS_RETRY_FOR_MS: integer(3 * 86_400_000, 1, 30 * 86_400_000),
  // Finished deliveries (and their attempts) are deleted this long after they finished.
  MERCHANT_WEBHOOKS_RETENTION_DAYS: integer(30, 1, 3650),
  // An endpoint is disabled after this many failed attempts in a row (re-enabled through the API).
  MERCHANT_WEBHOOKS_DISABLE_AFTER_FAILURES: integer(100, 1, 1_000_000),
  ...tracingVariables,
});

/** Every variable the configuration reads (`.env.example` documents each of them). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(schema.shape));

export type Config = Readonly<Omit<z.infer<typeof schema>, 'REPL_SOCKET'> & { REPL_SOCKET: string }>;

// A UNIX socket's path must fit in sun_path: 108 bytes on Linux, 104 on macOS, with the final NUL.
const SOCKET_PATH_BYTES_MAX = 100;

/** Where an instance's admin REPL listens unless REPL_SOCKET says otherwise (the REPL client finds it there too). */
export function defaultReplSocket(instance: string): string {
  return join(tmpdir(), `payment-gateway-${instance.replace(/[^A-Za-z0-9._-]/g, '_')}.sock`);
}

/** The repository's `.env`, beside this file, whatever the directory a command is run from. */
export const ENV_FILE = fileURLToPath(new URL('.env', import.meta.url));

/**
 * Adds the variables of an env file (`.env`: a developer's local settings, never committed) to
 * process.env before the configuration is parsed; a variable already in the environment keeps its
 * value. No file is not an error: the defaults and the environment are enough. True when it was read.
 */
export function loadEnvFile(path: string = ENV_FILE): boolean {
  if (!existsSync(path)) return false;
  process.loadEnvFile(path);
  return true;
}

/** Parses the environment once; the first bad variable stops the process with its name. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue?.path[0] ?? 'environment'), issue?.message ?? 'invalid');
  }
  const config = { ...parsed.data, REPL_SOCKET: parsed.data.REPL_SOCKET ?? defaultReplSocket(parsed.data.INSTANCE_ID) };
  if (config.BANK_MIN_DELAY_MS > config.BANK_MAX_DELAY_MS) {
    throw new ConfigError('BANK_MIN_DELAY_MS', 'must not be greater than BANK_MAX_DELAY_MS');
  }
  if (config.ACTOR_ASK_TIMEOUT_MS >= config.REQUEST_DEADLINE_MS) {
    // The actor's own "outcome unknown" must come first: it says more than the deadline can.
    throw new ConfigError('ACTOR_ASK_TIMEOUT_MS', 'must be less than REQUEST_DEADLINE_MS');
  }
  if (config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('HTTP_HEADERS_TIMEOUT_MS', 'must not be greater than HTTP_REQUEST_TIMEOUT_MS');
  }
  if (Buffer.byteLength(config.REPL_SOCKET) > SOCKET_PATH_BYTES_MAX) {
    throw new ConfigError('REPL_SOCKET', `must be at most ${SOCKET_PATH_BYTES_MAX} bytes (set a shorter path)`);
  }
  return Object.freeze(config);
}
