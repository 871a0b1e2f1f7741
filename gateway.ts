import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { Config } from './config.ts';
import { createEngine } from './engine/engine.ts';
import { startMerchantWebhooks, type DeliverySettings } from './engine/merchant-webhooks.ts';
import { systemResolve } from './engine/webhook-address.ts';
import type { BankClient } from './engine/bank-client.ts';
import type { Payments } from './engine/payments.ts';
import type { Registry } from './engine/registry.ts';
import type { ShardLeases } from './engine/shard-leases.ts';
import { answerClientErrors } from './http/client-errors.ts';
import { createActivity } from './http/dashboard/activity.ts';
import { createEdge } from './http/edge.ts';
import { answerStarting } from './http/starting.ts';
import { webhookData } from './http/transaction-json.ts';
import type { Logger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import { startOperatorTools } from './operator/tools.ts';
import { startReaper } from './persistence/reaper.ts';
import type { Sql } from './persistence/sql.ts';
import { openStorage } from './persistence/storage.ts';
import { startSimulator } from './simulator/simulator.ts';

/** The gateway's own limits (those an operator tunes are in config.ts). */
const GATEWAY_LIMITS = {
  /** An idle keep-alive connection is closed after this long. */
  keep_alive_timeout_ms: 5000,
  /** How often Node looks for requests past their timeouts (its default is 30 s): at most this. */
  connections_checking_interval_ms_max: 1000,
  /** Expired idempotency records and finished webhook deliveries: purged this often, at most this many per statement. */
  reaper_interval_ms: 10 * 60_000,
  reaper_batch_max: 1000,
  /** The dashboard's dead-letter retry waits this many actor ask timeouts for the API's answer. */
  dashboard_forward_asks: 2,
  /** The in-process bank: how long a transfer may hold its answer in the "timeout" scenario. */
  bank_hold_ms: 30_000,
} as const;

export interface Gateway {
  server: Server;
  url: string;
  sql: Sql;
  redis: Redis;
  accounts: Registry;
  payments: Payments;
  /** The shards this instance holds, and who holds the others. */
  shards: ShardLeases;
  bank: BankClient;
  /** The bank this instance talks to (the in-process simulator's address when BANK_URL is empty). */
  bankUrl: string;
  /** The task dashboard (DASHBOARD_PORT), and the admin REPL's socket (REPL_SOCKET). */
  dashboardUrl: string;
  replSocket: string;
  /** Stops accepting, lets requests in flight finish (bounded), then closes the pools. */
  close(): Promise<void>;
}

/**
 * The composition root: storage (persistence/storage.ts) → the engine (engine/engine.ts) → the HTTP
 * edge (http/edge.ts) and the operator tools, on a server listening on `config.PORT`. main.ts adds
 * what a process needs around it (configuration, migrations, signals).
 */
export async function startGateway(config: Config, log: Logger): Promise<Gateway> {
  const storage = await openStorage({
    database_url: config.DATABASE_URL,
    redis_url: config.REDIS_URL,
    redis_key_prefix: config.REDIS_KEY_PREFIX,
    pool_max: config.DATABASE_POOL_MAX,
    instance_id: config.INSTANCE_ID,
    // Paused longer than its lease, an instance loses its open transaction too (and the lease rows' locks).
    idle_in_transaction_ms: config.SHARD_LEASE_MS,
    idempotency_ttl_hours: config.IDEMPOTENCY_TTL_HOURS,
    log,
  });

  // Listen first (answering 503 until ready): the in-process bank needs our address for its callbacks.
  const server = createServer(
    {
      keepAliveTimeout: GATEWAY_LIMITS.keep_alive_timeout_ms,
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
      // A quarter of the headers timeout, so that a late request is answered close to its limit.
      connectionsCheckingInterval: Math.max(
        25,
        Math.min(GATEWAY_LIMITS.connections_checking_interval_ms_max, Math.floor(config.HTTP_HEADERS_TIMEOUT_MS / 4)),
      ),
    },
    answerStarting,
  );
  answerClientErrors(server);
  server.listen(config.PORT, config.HOST);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  log.info({ port }, 'gateway accepting connections; 503 service_starting until started');
  const simulator = config.BANK_URL ? undefined : await startInProcessBank(config, port, log);
  const bankUrl = config.BANK_URL || simulator!.url;
  const url = `http://127.0.0.1:${port}`;

  const metrics = createMetrics();
  const activity = createActivity({ recent_max: 50, window_s: 60 });
  const engine = createEngine({
    settings: config,
    storage,
    bank_url: bankUrl,
    instance_url: config.INTERNAL_URL ?? internalUrl(config.HOST, port),
    log,
    observe: metrics,
  });
  engine.onCommitted((_state, changes) => {
    metrics.committed(changes);
    activity.record(changes);
  });
  const reapers = [
    startReaper((limit) => storage.idempotency.purgeExpired(limit), {
      interval_ms: GATEWAY_LIMITS.reaper_interval_ms,
      batch_max: GATEWAY_LIMITS.reaper_batch_max,
      onError: (error) => log.warn({ err: error }, 'idempotency reaper failed'),
    }),
    startReaper((limit) => storage.webhooks.purgeFinished(limit, config.MERCHANT_WEBHOOKS_RETENTION_DAYS), {
      interval_ms: GATEWAY_LIMITS.reaper_interval_ms,
      batch_max: GATEWAY_LIMITS.reaper_batch_max,
      onError: (error) => log.warn({ err: error }, 'webhook delivery reaper failed'),
    }),
  ];
  await engine.start();
  const merchantWebhooks = startMerchantWebhooks({
    store: storage.webhooks,
    settings: merchantWebhookSettings(config),
    policy: { allow_private: config.MERCHANT_WEBHOOKS_ALLOW_PRIVATE, resolve: systemResolve },
    render: webhookData,
    log: log.child({ module: 'merchant-webhooks' }),
  });

  // Set by close(): from then on the edge refuses new requests and closes every connection it answers.
  let closing: Promise<void> | undefined;
  const edge = createEdge({
    settings: config,
    engine,
    storage,
    metrics,
    draining: () => closing !== undefined,
    log,
  });
  server.removeAllListeners('request');
  server.on('request', edge.app.callback());
  server.on('upgrade', edge.upgrade);
  const { accounts, payments, ownership, bank, journal } = engine;
  const tools = await startOperatorTools({
    config,
    reconciliation: storage.reconciliation,
    idempotency: storage.idempotency,
    metrics,
    activity,
    accounts,
    payments,
    bank,
    journal,
    deadLetters: storage.deadLetters,
    ownership,
    gateway_url: url,
    forward_timeout_ms: config.ACTOR_ASK_TIMEOUT_MS * GATEWAY_LIMITS.dashboard_forward_asks,
    log,
  });
  log.info(
    { port, instance: config.INSTANCE_ID, bank: bankUrl, shards_owned: ownership.owned().length },
    'gateway listening',
  );

  const close = () =>
    (closing ??= (async () => {
      engine.drain();
      // Upgraded sockets are not the server's connections any more: they would hold `server.close` open.
      edge.closeSockets();
      await tools.close();
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = setTimeout(() => server.closeAllConnections(), config.SHUTDOWN_TIMEOUT_MS);
      await drained;
      clearTimeout(deadline);
      // No request in flight any more: none is being forwarded.
      edge.close();
      for (const reaper of reapers) reaper.stop();
      await merchantWebhooks.stop();
      await engine.stop();
      await simulator?.close();
      await storage.close();
    })());

  const { dashboardUrl, replSocket } = tools;
  return {
    server,
    url,
    sql: storage.sql,
    redis: storage.redis,
    accounts,
    payments,
    shards: ownership,
    bank,
    bankUrl,
    dashboardUrl,
    replSocket,
    close,
  };
}

/** The merchant webhooks' schedule and bounds, from the configuration. */
function merchantWebhookSettings(config: Config): DeliverySettings {
  return {
    poll_ms: config.MERCHANT_WEBHOOKS_POLL_MS,
    in_flight_max: config.MERCHANT_WEBHOOKS_IN_FLIGHT_MAX,
    sockets_per_origin: config.MERCHANT_WEBHOOKS_SOCKETS_PER_ORIGIN,
    connect_timeout_ms: config.MERCHANT_WEBHOOKS_CONNECT_TIMEOUT_MS,
    timeout_ms: config.MERCHANT_WEBHOOKS_TIMEOUT_MS,
    retry_base_ms: config.MERCHANT_WEBHOOKS_RETRY_BASE_MS,
    retry_max_ms: config.MERCHANT_WEBHOOKS_RETRY_MAX_MS,
    attempts_max: config.MERCHANT_WEBHOOKS_ATTEMPTS_MAX,
    retry_for_ms: config.MERCHANT_WEBHOOKS_RETRY_FOR_MS,
    disable_after_failures: config.MERCHANT_WEBHOOKS_DISABLE_AFTER_FAILURES,
  };
}

/** The bank simulator in this process, calling back this instance, with the configured delays and rates. */
function startInProcessBank(config: Config, port: number, log: Logger) {
  return startSimulator(
    {
      host: '127.0.0.1',
      port: 0,
      callback_url: `http://127.0.0.1:${port}/webhooks/bank-callback`,
      signing_secret: config.WEBHOOK_SECRETS[0]!,
      delay_ms_min: config.BANK_MIN_DELAY_MS,
      delay_ms_max: config.BANK_MAX_DELAY_MS,
      hold_ms: GATEWAY_LIMITS.bank_hold_ms,
      seed: config.BANK_SEED,
      rates: {
        success: config.BANK_SUCCESS_RATE,
        timeout: config.BANK_TIMEOUT_RATE,
        unavailable: config.BANK_UNAVAILABLE_RATE,
        invalid: config.BANK_INVALID_RATE,
        insufficient_funds: config.BANK_INSUFFICIENT_FUNDS_RATE,
        duplicate_callback: config.BANK_DUPLICATE_CALLBACK_RATE,
        lost_callback: config.BANK_LOST_CALLBACK_RATE,
      },
    },
    // The root logger: each part of the simulator names its own module (bank, bank-http, bank-callbacks).
    log,
  );
}

/** Where the other instances reach this one when INTERNAL_URL does not say. */
function internalUrl(host: string, port: number): string {
  const name = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${name}:${port}`;
}
