import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type Koa from 'koa';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Engine } from '../engine/engine.ts';
import { systemResolve } from '../engine/webhook-address.ts';
import type { Logger } from '../logger.ts';
import type { RequestObservation } from '../metrics.ts';
import type { Storage } from '../persistence/storage.ts';
import { accountShard } from './account-shard.ts';
import { shardOf } from '../engine/shards.ts';
import { createApp, type RenderError } from './app.ts';
import { authenticate, createKeyCache, keyAuthenticator } from './auth.ts';
import { authFailureLimit, createAuthFailures } from './auth-failure-limit.ts';
import { errorBody } from './errors.ts';
import { createForwarder, INTERNAL_PATH } from './forward.ts';
import { graphqlErrorBody } from './graphql/errors.ts';
import { graphqlRoutes, isGraphqlPath } from './graphql/routes.ts';
import { createIdempotencyGate } from './idempotency.ts';
import { createApiLimits, rateLimits } from './rate-limit.ts';
import { accountRoutes } from './routes/accounts.ts';
import { adminRoutes } from './routes/admin.ts';
import { adminPanelRoutes } from './routes/admin-panel.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { docsRoutes } from './routes/docs.ts';
import { eventRoutes } from './routes/events.ts';
import { dependencyChecks, healthRoutes } from './routes/health.ts';
import { meRoutes } from './routes/me.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { transactionRoutes } from './routes/transactions.ts';
import { userRoutes } from './routes/users.ts';
import { viewerRoutes } from './routes/viewer.ts';
import { webhookEndpointRoutes } from './routes/webhook-endpoints.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { webSocketRoutes } from './routes/ws.ts';
import { securityHeaders } from './security-headers.ts';
import { admission, answerAsHttp, createNotificationSockets } from './websocket.ts';

/** The edge's own limits (those an operator tunes are in config.ts). */
export const EDGE_LIMITS = {
  /** An event stream: a comment this often keeps proxies from closing it; it ends after its lifetime. */
  events_heartbeat_ms: 15_000,
  events_lifetime_ms: 30 * 60_000,
  /** What an event stream tells its client to wait before reconnecting. */
  events_retry_ms: 3000,
  /** WebSockets (http/websocket.ts): a ping this often, a client that has not answered the last one is cut off. */
  ws_ping_interval_ms: 15_000,
  /** How long a socket without an Authorization header has to send its auth message. */
  ws_auth_timeout_ms: 5000,
  /** Bytes queued for a socket beyond which its client is dropped as too slow (4408). */
  ws_buffered_max_bytes: 1024 * 1024,
  /** How long a closing socket waits for its client's close frame (a shutdown waits at most this for sockets). */
  ws_close_timeout_ms: 5000,
  /** The largest message a client may send (the auth message is the only one read). */
  ws_message_max_bytes: 4096,
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
  | 'SHARD_LEASE_MS'
  | 'HEALTH_TIMEOUT_MS'
  | 'REQUEST_DEADLINE_MS'
  | 'MERCHANT_WEBHOOKS_ALLOW_PRIVATE'
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
  /** The server's `upgrade` listener: WebSockets on GET /api/v1/ws (http/websocket.ts). */
  upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Closes every WebSocket (1001): call as draining begins, since open sockets hold the server open. */
  closeSockets: () => void;
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
    // A live owner answers a read within its actor's ask timeout (its own 503 included); one silent for
    // longer than its lease as well may have lost the shard while paused, so the owner is looked for again.
    read_timeout_ms: Math.max(s.SHARD_LEASE_MS, s.ACTOR_ASK_TIMEOUT_MS + 500),
    wait_ms: s.SHARD_WAIT_MS,
    body_max_bytes: s.BODY_SIZE_MAX_BYTES,
    log: log.child({ module: 'forward' }),
  });
  const currencies = s.CURRENCIES;
  const bodySizeMaxBytes = s.BODY_SIZE_MAX_BYTES;
  const keyCache = createKeyCache(users, { ttl_ms: s.AUTH_CACHE_TTL_MS });
  // Both limits get the root logger: their counters' store names its own module (`rate-limit`,
  // with `limits: 'auth_failures'` or `'api'`), and a second `module` would repeat the key.
  // Made once, for the middleware and the WebSockets alike.
  const authFailures = createAuthFailures({
    counters: storage.rateLimitCounters,
    key_prefix: `${s.REDIS_KEY_PREFIX}auth`,
    max_per_min: s.RATE_LIMIT_AUTH_FAILURES_PER_MIN,
    log,
  });
  // GraphQL counts its requests in these counters too, by their fields (http/graphql/routes.ts).
  const apiLimits = createApiLimits({
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
    tracing: {
      instance: s.INSTANCE_ID,
      shardOf: (user_id) => shardOf(user_id, ownership.shards),
      // A forwarded command's span is opened by the forwarder, under the context its signed body carries.
      skip: [INTERNAL_PATH],
    },
    middleware: [
      // Commands forwarded by another instance, which authenticated, limited and validated them:
      // answered here, before (and without) any of the middleware below.
      forwarder.serve(),
      securityHeaders({ cors_origins: s.CORS_ORIGINS }),
      // Tells a shard-aware front door where the request's account lives (read after the routes ran).
      accountShard({ shards: ownership.shards, owns: (shard) => ownership.owns(shard) }),
      authFailureLimit(authFailures),
      authenticate(keyCache, s.ADMIN_API_KEY),
      rateLimits(apiLimits),
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
        limits: apiLimits,
        bodySizeMaxBytes,
        log: log.child({ module: 'graphql' }),
      }),
      webhookEndpointRoutes({
        webhooks: storage.webhooks,
        gate,
        policy: { allow_private: s.MERCHANT_WEBHOOKS_ALLOW_PRIVATE, resolve: systemResolve },
        bodySizeMaxBytes,
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
      webSocketRoutes(s.CORS_ORIGINS),
      viewerRoutes({ currencies }),
      adminPanelRoutes(),
      metricsRoutes(options.metrics.registry),
    ],
  });
  const sockets = createNotificationSockets({
    feed,
    users,
    callerOf: keyAuthenticator(keyCache, s.ADMIN_API_KEY),
    admission: admission(authFailures, apiLimits),
    cors_origins: s.CORS_ORIGINS,
    draining: options.draining,
    otherwise: answerAsHttp(app.callback()),
    limits: {
      ping_interval_ms: EDGE_LIMITS.ws_ping_interval_ms,
      auth_timeout_ms: EDGE_LIMITS.ws_auth_timeout_ms,
      buffered_max_bytes: EDGE_LIMITS.ws_buffered_max_bytes,
      lifetime_ms: EDGE_LIMITS.events_lifetime_ms,
      close_timeout_ms: EDGE_LIMITS.ws_close_timeout_ms,
      message_max_bytes: EDGE_LIMITS.ws_message_max_bytes,
    },
    log: log.child({ module: 'websocket' }),
  });
  return { app, upgrade: sockets.upgrade, closeSockets: sockets.close, close: () => forwarder.close() };
}
