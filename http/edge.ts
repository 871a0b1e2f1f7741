import type Koa from 'koa';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Engine } from '../engine/engine.ts';
import type { Logger } from '../logger.ts';
import type { RequestObservation } from '../metrics.ts';
import type { Storage } from '../persistence/storage.ts';
import { accountShard } from './account-shard.ts';
import { createApp, type RenderError } from './app.ts';
import { authenticate, createKeyCache } from './auth.ts';
import { authFailureLimit } from './auth-failure-limit.ts';
import { errorBody } from './errors.ts';
import { createForwarder } from './forward.ts';
import { graphqlErrorBody } from './graphql/errors.ts';
import { graphqlRoutes, isGraphqlPath } from './graphql/routes.ts';
import { createIdempotencyGate } from './idempotency.ts';
import { createRateLimits } from './rate-limit.ts';
import { accountRoutes } from './routes/accounts.ts';
import { adminRoutes } from './routes/admin.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { docsRoutes } from './routes/docs.ts';
import { eventRoutes } from './routes/events.ts';
import { dependencyChecks, healthRoutes } from './routes/health.ts';
import { meRoutes } from './routes/me.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { transactionRoutes } from './routes/transactions.ts';
import { userRoutes } from './routes/users.ts';
import { viewerRoutes } from './routes/viewer.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { securityHeaders } from './security-headers.ts';

/** The edge's own limits (those an operator tunes are in config.ts). */
export const EDGE_LIMITS = {
  /** An event stream: a comment this often keeps proxies from closing it; it ends after its lifetime. */
  events_heartbeat_ms: 15_000,
  events_lifetime_ms: 30 * 60_000,
  /** What an event stream tells its client to wait before reconnecting. */
  events_retry_ms: 3000,
} as const;

/** The settings the edge reads: the typed configuration, nothing parsed here. */
export type EdgeSettings = Pick<
  Config,
  | 'INSTANCE_ID'
  | 'ADMIN_API_KEY'
  | 'REDIS_KEY_PREFIX'
  | 'CORS_ORIGINS'
  | 'CURRENCIES'
  | 'WEBHOOK_SECRETS'
  | 'BODY_SIZE_MAX_BYTES'
  | 'AUTH_CACHE_TTL_MS'
  | 'RATE_LIMIT_AUTH_FAILURES_PER_MIN'
  | 'RATE_LIMIT_GLOBAL_PER_MIN'
  | 'RATE_LIMIT_BALANCE_PER_MIN'
  | 'RATE_LIMIT_TRANSACTIONS_PER_MIN'
  | 'ACTOR_ASK_TIMEOUT_MS'
  | 'FORWARD_TIMEOUT_MS'
  | 'SHARD_WAIT_MS'
  | 'HEALTH_TIMEOUT_MS'
  | 'REQUEST_DEADLINE_MS'
>;

export interface EdgeOptions {
  settings: EdgeSettings;
  engine: Engine;
  storage: Storage;
  metrics: { request: (request: RequestObservation) => void; registry: MetricsRegistry };
  /** True once the instance is stopping (new requests get 503 shutting_down). */
  draining: () => boolean;
  log: Logger;
}

/** The edge: its Koa application, and what it holds open beyond it (the connections to other instances). */
export interface Edge {
  app: Koa;
  /** Closes the forwarding hop's connections: call once the server has no request in flight. */
  close(): void;
}

/**
 * The HTTP edge's one wiring place: middleware in order (forwarded commands answered → security headers →
 * failed-auth limit → auth → rate limits), then the routers, over the engine and the stores.
 */
export function createEdge(options: EdgeOptions): Edge {
  const { settings: s, engine, storage, log } = options;
  const { accounts, ownership, feed, bank } = engine;
  const { users, readModel, idempotency, deadLetters } = storage;
  const gate = createIdempotencyGate(idempotency, s.ACTOR_ASK_TIMEOUT_MS);
  const forwarder = createForwarder({
    leases: ownership,
    instance: s.INSTANCE_ID,
    secret: s.ADMIN_API_KEY,
    timeout_ms: s.FORWARD_TIMEOUT_MS,
    wait_ms: s.SHARD_WAIT_MS,
    body_max_bytes: s.BODY_SIZE_MAX_BYTES,
    log: log.child({ module: 'forward' }),
  });
  const currencies = s.CURRENCIES;
  const bodySizeMaxBytes = s.BODY_SIZE_MAX_BYTES;
  const keyCache = createKeyCache(users, { ttl_ms: s.AUTH_CACHE_TTL_MS });
  // The REST routes' limits by path; GraphQL counts each request in the same counters, by its fields.
  const limits = createRateLimits({
    counters: storage.rateLimitCounters,
    key_prefix: `${s.REDIS_KEY_PREFIX}rl`,
    global_per_min: s.RATE_LIMIT_GLOBAL_PER_MIN,
    balance_per_min: s.RATE_LIMIT_BALANCE_PER_MIN,
    transactions_per_min: s.RATE_LIMIT_TRANSACTIONS_PER_MIN,
    log,
  });
  // Errors on GraphQL's paths are written in GraphQL's shape, with the same codes.
  const renderError: RenderError = (ctx, error) =>
    isGraphqlPath(ctx.path) ? graphqlErrorBody(ctx, error) : errorBody(error, ctx.state.requestId);

  const app = createApp({
    log: log.child({ module: 'http' }),
    observe: options.metrics.request,
    deadline_ms: s.REQUEST_DEADLINE_MS,
    draining: options.draining,
    renderError,
    middleware: [
      // Commands forwarded by another instance, which authenticated, limited and validated them:
      // answered here, before (and without) any of the middleware below.
      forwarder.serve(),
      securityHeaders({ cors_origins: s.CORS_ORIGINS }),
      // Tells a shard-aware front door where the request's account lives (read after the routes ran).
      accountShard({ shards: ownership.shards, owns: (shard) => ownership.owns(shard) }),
      // Both limits get the root logger: their counters' store names its own module (`rate-limit`,
      // with `limits: 'auth_failures'` or `'api'`), and a second `module` would repeat the key.
      authFailureLimit({
        counters: storage.rateLimitCounters,
        key_prefix: `${s.REDIS_KEY_PREFIX}auth`,
        max_per_min: s.RATE_LIMIT_AUTH_FAILURES_PER_MIN,
        log,
      }),
      authenticate(keyCache, s.ADMIN_API_KEY),
      limits.middleware(),
    ],
    routers: [
      healthRoutes(dependencyChecks({ pings: storage.pings, bank }, s.HEALTH_TIMEOUT_MS), s.HEALTH_TIMEOUT_MS),
      userRoutes({ users, gate, bodySizeMaxBytes }),
      apiKeyRoutes({ users, apiKeys: storage.apiKeys, keyCache, gate, bodySizeMaxBytes }),
      accountRoutes({ accounts, readModel, users, currencies, forwarding: forwarder }),
      adminRoutes({
        reconciliation: storage.reconciliation,
        accounts,
        deadLetters,
        gate,
        forwarding: forwarder,
        shardTable: () => ownership.table(),
      }),
      webhookRoutes({
        secrets: s.WEBHOOK_SECRETS,
        inbox: storage.inbox,
        readModel,
        accountOf: (transaction_id) => engine.payments.accountOf(transaction_id),
        accounts,
        bodySizeMaxBytes,
        forwarding: forwarder,
        log: log.child({ module: 'webhooks' }),
      }),
      transactionRoutes({ accounts, readModel, users, gate, currencies, bodySizeMaxBytes, forwarding: forwarder }),
      graphqlRoutes({
        accounts,
        readModel,
        users,
        currencies,
        gate,
        forwarding: forwarder,
        limits,
        bodySizeMaxBytes,
        log: log.child({ module: 'graphql' }),
      }),
      docsRoutes({ currencies }),
      meRoutes({ users }),
      eventRoutes({
        feed,
        users,
        heartbeat_ms: EDGE_LIMITS.events_heartbeat_ms,
        lifetime_ms: EDGE_LIMITS.events_lifetime_ms,
        retry_ms: EDGE_LIMITS.events_retry_ms,
        log: log.child({ module: 'events' }),
      }),
      viewerRoutes(),
      metricsRoutes(options.metrics.registry),
    ],
  });
  return { app, close: () => forwarder.close() };
}
