import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { Middleware } from 'koa';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { Config } from './config.ts';
import { authenticate } from './http/auth.ts';
import { authFailureLimit } from './http/auth-failure-limit.ts';
import { rateLimits } from './http/rate-limit.ts';
import { securityHeaders } from './http/security-headers.ts';
import { createApp } from './http/app.ts';
import { answerClientErrors } from './http/client-errors.ts';
import { answerStarting } from './http/starting.ts';
import { createIdempotencyGate } from './http/idempotency.ts';
import { dependencyChecks, healthRoutes } from './http/routes/health.ts';
import { docsRoutes } from './http/routes/docs.ts';
import { userRoutes } from './http/routes/users.ts';
import type { Logger } from './logger.ts';
import { createIdempotencyStore, startIdempotencyReaper } from './persistence/idempotency.ts';
import { createJournal, readJournal } from './persistence/journal.ts';
import { createLeaseStore, sessionName } from './persistence/leases.ts';
import { createReadModel } from './persistence/read-model.ts';
import { createSnapshotStore } from './persistence/snapshots.ts';
import { createRegistry, type Registry } from './engine/registry.ts';
import { shardOf } from './engine/shards.ts';
import { startShardLeases, type ShardLeases } from './engine/shard-leases.ts';
import { createInstanceRegistry } from './persistence/instances.ts';
import { createForwarder, type ToOwner } from './http/forward.ts';
import { accountRoutes } from './http/routes/accounts.ts';
import { adminRoutes } from './http/routes/admin.ts';
import { transactionRoutes } from './http/routes/transactions.ts';
import { createRedis } from './persistence/redis.ts';
import { createSql, type Sql } from './persistence/sql.ts';
import { createUserStore } from './persistence/users.ts';
import { createDeadLetterStore } from './persistence/dead-letters.ts';
import { createInbox } from './persistence/inbox.ts';
import { createBankClient, type BankClient } from './engine/bank-client.ts';
import { createPayments, type Payments } from './engine/payments.ts';
import { startOpenPaymentSweep } from './engine/open-payment-sweep.ts';
import { webhookRoutes } from './http/routes/webhooks.ts';
import { eventRoutes } from './http/routes/events.ts';
import { meRoutes } from './http/routes/me.ts';
import { viewerRoutes } from './http/routes/viewer.ts';
import { createTransactionFeed } from './engine/transaction-feed.ts';
import { relayFeed } from './engine/feed-relay.ts';
import { loadBankEnv, startSimulator } from './simulator/simulator.ts';
import { createMetrics } from './metrics.ts';
import { metricsRoutes } from './http/routes/metrics.ts';
import { createActivity } from './http/dashboard/activity.ts';
import { startOperatorTools } from './http/operator-tools.ts';

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

/** The composition root: config → Postgres, Redis → stores → Koa, listening on `config.PORT`. */
export async function startGateway(config: Config, log: Logger): Promise<Gateway> {
  const sql = createSql(config.DATABASE_URL, {
    pool_max: config.DATABASE_POOL_MAX,
    // Names the instance, so that a takeover can end a stale owner's sessions (engine/shard-leases.ts).
    application_name: sessionName(config.INSTANCE_ID),
    // Paused longer than its lease, an instance loses its open transaction too (and the lease rows' locks).
    idle_in_transaction_ms: config.SHARD_LEASE_MS,
  });
  const redis = createRedis(config.REDIS_URL, `gateway-${config.INSTANCE_ID}`);
  redis.on('error', (error: Error) => log.child({ module: 'redis' }).warn({ err: error.message }, 'redis error'));

  // Start even when Redis is down (health reports it), but give a live Redis the time to connect.
  await Promise.race([
    once(redis, 'ready').catch(() => undefined),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);

  // Listen first (answering 503 until ready): the in-process bank needs our address for its callbacks.
  const server = createServer(
    {
      keepAliveTimeout: 5_000,
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
      // Node looks for late requests only this often (30 s by default): a quarter of the headers timeout.
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(config.HTTP_HEADERS_TIMEOUT_MS / 4))),
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

  const users = createUserStore(sql);
  const idempotency = createIdempotencyStore(sql, config.IDEMPOTENCY_TTL_HOURS);
  const gate = createIdempotencyGate(idempotency, config.ACTOR_ASK_TIMEOUT_MS);
  const reaper = startIdempotencyReaper(idempotency, {
    interval_ms: 10 * 60_000,
    batch_max: 1000,
    onError: (error) => log.warn({ err: error }, 'idempotency reaper failed'),
  });
  const readModel = createReadModel(sql);
  const metrics = createMetrics();
  const activity = createActivity({ recent_max: 50, window_s: 60 });
  const journal = createJournal(sql, {
    batch_size_max: config.JOURNAL_BATCH_SIZE_MAX,
    batch_wait_ms: config.JOURNAL_BATCH_WAIT_MS,
    flushes_in_flight_max: Math.max(1, Math.floor(config.DATABASE_POOL_MAX / 2)),
    idempotency_ttl_hours: config.IDEMPOTENCY_TTL_HOURS,
    log: log.child({ module: 'journal' }),
    onBatch: metrics.journalBatch,
  });
  const leases = createLeaseStore(sql);
  // Subscribed to the cluster's channels: membership changes and the live feed of other instances.
  const subscriber = createRedis(config.REDIS_URL, `gateway-${config.INSTANCE_ID}-subscriber`);
  subscriber.on('error', () => undefined);
  const url = `http://127.0.0.1:${port}`;
  // Started once the registry and the payment workers (created below) exist.
  const ownership = startShardLeases({
    redis,
    subscriber,
    instances: createInstanceRegistry(redis, config.REDIS_KEY_PREFIX),
    leases,
    key_prefix: config.REDIS_KEY_PREFIX,
    instance: { id: config.INSTANCE_ID, url: config.INTERNAL_URL ?? internalUrl(config.HOST, port) },
    shards: config.SHARDS,
    lease_ms: config.SHARD_LEASE_MS,
    actorsPerShard: () => accounts.perShard(),
    onAcquired: (shards) => void sweep.taken(shards),
    onLost: (shards) => {
      const lost = new Set(shards);
      for (const shard of shards) accounts.dropShard(shard);
      payments.release((user_id) => lost.has(shardOf(user_id, config.SHARDS)));
    },
    log: log.child({ module: 'shard-leases' }),
  });
  const forwarder = createForwarder({
    leases: ownership,
    instance: config.INSTANCE_ID,
    secret: config.ADMIN_API_KEY,
    timeout_ms: config.FORWARD_TIMEOUT_MS,
    wait_ms: config.SHARD_WAIT_MS,
    log: log.child({ module: 'forward' }),
  });
  const toOwner: ToOwner = (ctx, user_id) => forwarder.toOwner(ctx, user_id);
  const deadLetters = createDeadLetterStore(sql);
  const bank = createBankClient({
    base_url: bankUrl,
    timeout_ms: config.BANK_TIMEOUT_MS,
    breaker_reset_ms: config.BANK_BREAKER_RESET_MS,
    calls_in_flight_max: config.BANK_CALLS_IN_FLIGHT_MAX,
    log: log.child({ module: 'bank-client' }),
    onCall: metrics.bankCall,
  });
  // The workers reach accounts through the registry, created just below (called only later, at run time).
  const payments = createPayments({
    bank,
    accounts: { ask: (user_id, request) => accounts.ask(user_id, request) },
    deadLetters,
    attempts_max: config.BANK_ATTEMPTS_MAX,
    backoff_base_ms: config.BANK_BACKOFF_BASE_MS,
    backoff_max_ms: config.BANK_BACKOFF_MAX_MS,
    callback_deadline_ms: config.BANK_CALLBACK_DEADLINE_MS,
    polls_max: config.BANK_POLLS_MAX,
    breaker_wait_ms: config.BANK_BREAKER_RESET_MS,
    log: log.child({ module: 'payments' }),
    onRetry: metrics.retry,
    onDeadLetter: metrics.deadLetter,
  });
  // Committed transaction changes for the event streams (GET /api/v1/events, the viewer), all bounded.
  const feed = createTransactionFeed({
    subscribers_max: 1000,
    subscribers_per_owner_max: 8,
    buffer_max: 256,
    share: (transactions) => relay.share(transactions),
    log: log.child({ module: 'transaction-feed' }),
  });
  const relay = relayFeed(feed, {
    redis,
    subscriber,
    channel: `${config.REDIS_KEY_PREFIX}feed`,
    instance: config.INSTANCE_ID,
    flush_ms: 10,
    batch_max: 500,
    log: log.child({ module: 'feed-relay' }),
  });
  const accounts = createRegistry({
    deps: {
      onCommitted: (state, events, before) => {
        payments.onCommitted(state, events);
        feed.onCommitted(before, events);
        metrics.committed(before, events);
        activity.record(before, events);
      },
      onRecovered: (state) => payments.onRecovered(state),
      journal,
      snapshots: createSnapshotStore(sql),
      readEvents: (user_id, after_seq) => readJournal(sql, user_id, after_seq),
      ownership,
      snapshot_every_events: config.SNAPSHOT_EVERY_EVENTS,
      log: log.child({ module: 'account' }),
    },
    idle_ms: config.ACTOR_IDLE_MS,
    mailbox_max: config.ACTOR_MAILBOX_MAX,
    batch_max: 256,
    ask_timeout_ms: config.ACTOR_ASK_TIMEOUT_MS,
    log: log.child({ module: 'registry' }),
  });
  const sweep = startOpenPaymentSweep({
    openTransactions: (query) => readModel.openTransactions(query),
    accounts,
    payments: { has: (id) => payments.has(id), resume: (state) => payments.onRecovered(state) },
    ownership,
    interval_ms: config.OPEN_PAYMENT_SWEEP_MS,
    page_size_max: 1000,
    asks_in_flight_max: 16,
    log: log.child({ module: 'open-payment-sweep' }),
  });
  const currencies = config.CURRENCIES;
  await Promise.race([ownership.start(), new Promise((resolve) => setTimeout(resolve, 2000))]);
  // A forwarded request was counted by the instance the client called: not again here.
  const unlessForwarded =
    (middleware: Middleware): Middleware =>
    async (ctx, next) => {
      if (ctx.state.forwardedBy) await next();
      else await middleware(ctx, next);
    };

  // Set by close(): from then on the edge refuses new requests and closes every connection it answers.
  let closing: Promise<void> | undefined;
  const app = createApp({
    log: log.child({ module: 'http' }),
    observe: metrics.request,
    deadline_ms: config.REQUEST_DEADLINE_MS,
    draining: () => closing !== undefined,
    middleware: [
      securityHeaders({ cors_origins: config.CORS_ORIGINS }),
      forwarder.recognise(),
      unlessForwarded(
        authFailureLimit({
          redis,
          key_prefix: `${config.REDIS_KEY_PREFIX}auth`,
          max_per_min: config.RATE_LIMIT_AUTH_FAILURES_PER_MIN,
          log: log.child({ module: 'auth-failure-limit' }),
        }),
      ),
      authenticate(users, config.ADMIN_API_KEY, { ttl_ms: config.AUTH_CACHE_TTL_MS }),
      unlessForwarded(
        rateLimits({
          redis,
          key_prefix: `${config.REDIS_KEY_PREFIX}rl`,
          global_per_min: config.RATE_LIMIT_GLOBAL_PER_MIN,
          balance_per_min: config.RATE_LIMIT_BALANCE_PER_MIN,
          transactions_per_min: config.RATE_LIMIT_TRANSACTIONS_PER_MIN,
          log: log.child({ module: 'rate-limit' }),
        }),
      ),
    ],
    routers: [
      healthRoutes(dependencyChecks({ sql, redis, bank }, config.HEALTH_TIMEOUT_MS), config.HEALTH_TIMEOUT_MS),
      userRoutes({ sql, users, idempotency, gate, bodySizeMaxBytes: config.BODY_SIZE_MAX_BYTES }),
      accountRoutes({ accounts, readModel, users, currencies, toOwner }),
      adminRoutes({ sql, accounts, payments, deadLetters, gate, toOwner, shardTable: () => ownership.table() }),
      webhookRoutes({
        secrets: config.WEBHOOK_SECRETS,
        inbox: createInbox(sql),
        readModel,
        accounts,
        bodySizeMaxBytes: config.BODY_SIZE_MAX_BYTES,
        toOwner,
        log: log.child({ module: 'webhooks' }),
      }),
      transactionRoutes({
        accounts,
        readModel,
        users,
        gate,
        currencies,
        bodySizeMaxBytes: config.BODY_SIZE_MAX_BYTES,
        toOwner,
      }),
      docsRoutes({ currencies }),
      meRoutes({ users }),
      eventRoutes({
        feed,
        users,
        heartbeat_ms: 15_000,
        lifetime_ms: 30 * 60_000,
        retry_ms: 3000,
        log: log.child({ module: 'events' }),
      }),
      viewerRoutes(),
      metricsRoutes(metrics.registry),
    ],
  });

  server.removeAllListeners('request');
  server.on('request', app.callback());
  const tools = await startOperatorTools({
    config,
    sql,
    metrics,
    activity,
    accounts,
    payments,
    bank,
    journal,
    deadLetters,
    ownership,
    gateway_url: url,
    forward_timeout_ms: config.ACTOR_ASK_TIMEOUT_MS * 2,
    log,
  });
  log.info(
    { port, instance: config.INSTANCE_ID, bank: bankUrl, shards_owned: ownership.owned().length },
    'gateway listening',
  );

  const close = () =>
    (closing ??= (async () => {
      // A peer stopping at the same time must not hand us its shards while we close.
      ownership.drain();
      // Open event streams would hold the server open until SHUTDOWN_TIMEOUT_MS: end them first.
      feed.close();
      await tools.close();
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = setTimeout(() => server.closeAllConnections(), config.SHUTDOWN_TIMEOUT_MS);
      await drained;
      clearTimeout(deadline);
      reaper.stop();
      await sweep.stop();
      payments.stop();
      bank.shutdown();
      await simulator?.close();
      await accounts.close();
      // Only now that every actor is stopped: the others take the shards over at once.
      await ownership.stop();
      relay.close();
      subscriber.disconnect();
      await journal.close();
      await sql.end({ timeout: 5 });
      redis.disconnect();
    })());

  const { dashboardUrl, replSocket } = tools;
  return {
    server,
    url,
    sql,
    redis,
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

/** The bank simulator in this process, calling back this instance, with the configured delays and rates. */
function startInProcessBank(config: Config, port: number, log: Logger) {
  const env = loadBankEnv({
    ...process.env,
    BANK_HOST: '127.0.0.1',
    BANK_PORT: '0',
    BANK_CALLBACK_URL: `http://127.0.0.1:${port}/webhooks/bank-callback`,
    BANK_MIN_DELAY_MS: String(config.BANK_MIN_DELAY_MS),
    BANK_MAX_DELAY_MS: String(config.BANK_MAX_DELAY_MS),
    BANK_SUCCESS_RATE: String(config.BANK_SUCCESS_RATE),
    BANK_SEED: config.BANK_SEED,
    BANK_TIMEOUT_RATE: String(config.BANK_TIMEOUT_RATE),
    BANK_UNAVAILABLE_RATE: String(config.BANK_UNAVAILABLE_RATE),
    BANK_INVALID_RATE: String(config.BANK_INVALID_RATE),
    BANK_INSUFFICIENT_FUNDS_RATE: String(config.BANK_INSUFFICIENT_FUNDS_RATE),
    BANK_DUPLICATE_CALLBACK_RATE: String(config.BANK_DUPLICATE_CALLBACK_RATE),
    BANK_LOST_CALLBACK_RATE: String(config.BANK_LOST_CALLBACK_RATE),
    WEBHOOK_SECRETS: config.WEBHOOK_SECRETS.join(','),
  });
  return startSimulator(env, log.child({ module: 'bank' }));
}

/** Where the other instances reach this one when INTERNAL_URL does not say. */
function internalUrl(host: string, port: number): string {
  const name = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${name}:${port}`;
}
