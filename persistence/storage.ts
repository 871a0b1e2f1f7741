import { once } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { createApiKeyStore, type ApiKeyStore } from './api-keys.ts';
import { createDeadLetterStore, type DeadLetterStore } from './dead-letters.ts';
import { createFeedChannel, type FeedChannel } from './feed-channel.ts';
import { createIdempotencyStore, type IdempotencyStore } from './idempotency.ts';
import { createInbox, type Inbox } from './inbox.ts';
import { createInstanceRegistry, type InstanceRegistry } from './instances.ts';
import { createLeaseStore, sessionName, type LeaseStore } from './leases.ts';
import { createReadModel, type ReadModel } from './read-model.ts';
import { createReconciliationReader, type ReconciliationReader } from './reconciliation-reader.ts';
import { rateLimitCounters, type RateLimitCounters } from './rate-limit-counters.ts';
import { createRedis } from './redis.ts';
import { createShardLocks, type ShardLocks } from './shard-locks.ts';
import { createSnapshotStore, type SnapshotStore } from './snapshots.ts';
import { createSql, type Sql } from './sql.ts';
import { createUserStore, type UserStore } from './users.ts';
import { createWebhookStore, type WebhookStore } from './webhooks.ts';

/** How long start-up waits for Redis before going on without it (/health then reports it). */
const REDIS_READY_WAIT_MS = 2000;

export interface StorageOptions {
  database_url: string;
  redis_url: string;
  redis_key_prefix: string;
  pool_max: number;
  instance_id: string;
  /** Postgres ends a transaction left idle this long: the shard lease, so a paused owner lets go. */
  idle_in_transaction_ms: number;
  idempotency_ttl_hours: number;
  log: Logger;
}

/** One trivial round trip per dependency, for `GET /health`: each resolves when it answers. */
export interface StoragePings {
  postgres(): Promise<void>;
  redis(): Promise<void>;
}

/** Every Postgres and Redis store the gateway uses, on one pool and two Redis connections. */
export interface Storage {
  sql: Sql;
  redis: Redis;
  /** A second connection for the cluster's channels (a subscribed connection runs no other command). */
  subscriber: Redis;
  users: UserStore;
  apiKeys: ApiKeyStore;
  idempotency: IdempotencyStore;
  readModel: ReadModel;
  leases: LeaseStore;
  snapshots: SnapshotStore;
  inbox: Inbox;
  deadLetters: DeadLetterStore;
  instances: InstanceRegistry;
  shardLocks: ShardLocks;
  pings: StoragePings;
  rateLimitCounters: RateLimitCounters;
  reconciliation: ReconciliationReader;
  feedChannel: FeedChannel;
  /** Merchant webhook endpoints and their deliveries. */
  webhooks: WebhookStore;
  /** Ends the pool (waiting up to 5 s for queries in flight) and the Redis connections. */
  close(): Promise<void>;
}

/**
 * Opens Postgres and Redis and builds the stores on them: the persistence layer's one wiring place.
 * Starts even when Redis is down (health reports it), but gives a live Redis the time to connect.
 */
export async function openStorage(options: StorageOptions): Promise<Storage> {
  const sql = createSql(options.database_url, {
    pool_max: options.pool_max,
    // Names the instance, so that a takeover can end a stale owner's sessions (engine/shard-leases.ts).
    application_name: sessionName(options.instance_id),
    idle_in_transaction_ms: options.idle_in_transaction_ms,
  });
  const redis = createRedis(options.redis_url, `gateway-${options.instance_id}`);
  const redisLog = options.log.child({ module: 'redis' });
  redis.on('error', (error: Error) => redisLog.warn({ err: error.message }, 'redis error'));
  const subscriber = createRedis(options.redis_url, `gateway-${options.instance_id}-subscriber`);
  subscriber.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    once(redis, 'ready').catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, REDIS_READY_WAIT_MS))),
  ]);
  clearTimeout(timer);
  const idempotency = createIdempotencyStore(sql, options.idempotency_ttl_hours);
  return {
    sql,
    redis,
    subscriber,
    users: createUserStore(sql, idempotency),
    apiKeys: createApiKeyStore(sql, idempotency),
    idempotency,
    readModel: createReadModel(sql),
    leases: createLeaseStore(sql),
    snapshots: createSnapshotStore(sql),
    inbox: createInbox(sql),
    deadLetters: createDeadLetterStore(sql),
    instances: createInstanceRegistry(redis, subscriber, options.redis_key_prefix),
    reconciliation: createReconciliationReader(sql),
    rateLimitCounters: rateLimitCounters(redis),
    pings: {
      postgres: async () => {
        await sql`SELECT 1`;
      },
      redis: async () => {
        await redis.ping();
      },
    },
    shardLocks: createShardLocks(redis, options.redis_key_prefix),
    feedChannel: createFeedChannel(redis, subscriber, options.redis_key_prefix),
    webhooks: createWebhookStore(sql, idempotency),
    async close() {
      subscriber.disconnect();
      await sql.end({ timeout: 5 });
      redis.disconnect();
    },
  };
}
