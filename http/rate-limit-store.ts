// When Redis is unreachable or slow, each counter falls back to an in-memory counter in this process
// (`on_redis_down: 'per_instance'`, the default). A Redis outage must not stop payments: money is
// protected by the account actors and the journal, not by the limiter, so failing closed would turn a
// cache outage into a payments outage. Failing wide open would drop all protection at the moment the
// system is weakest; per-instance counters keep every limit in force, only multiplied by the number of
// instances (N instances allow up to N × the limit). Responses say so with `X-RateLimit-Status: degraded`.
// The memory holds one entry per key seen in the last window, each dropped when its window ends.
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../logger.ts';

/** rate-limiter-flexible counts in fixed windows: the first hit starts a 60 s window, then the key expires. */
export const WINDOW_S = 60;

/** A Redis call slower than this counts as Redis being down; a local Redis answers in well under 1 ms. */
export const REDIS_TIMEOUT_MS_DEFAULT = 250;

/** How long counters skip Redis after it failed, before they try it again. */
export const REDIS_RETRY_MS = 1000;

/** What to do when Redis cannot count: count per instance, let the request through, or answer 503. */
export type RedisDownPolicy = 'per_instance' | 'allow' | 'deny';

/** A counter's reading: how many hits this window holds and when it ends, or `none` when nothing counted. */
export type Count =
  { store: 'redis' | 'memory'; limit: number; consumed: number; reset_ms: number } | { store: 'none'; limit: number };

/** One named limit, counted per key. Neither method rejects: failures become `memory` or `none` counts. */
export interface Counter {
  readonly name: string;
  readonly limit: number;
  /** Counts one hit and returns the count including it. */
  consume(key: string): Promise<Count>;
  /** The current count, without counting. */
  peek(key: string): Promise<Count>;
}

export interface RateLimitStoreOptions {
  /** Which limits these are, in the store's log lines. */
  name: string;
  redis: Redis;
  key_prefix: string;
  log: Logger;
  on_redis_down: RedisDownPolicy;
  /** A Redis call slower than this counts as Redis being down, so a hung Redis cannot stall requests. */
  timeout_ms: number;
}

type Reading = RateLimiterRes | null;

function withTimeout(promise: Promise<Reading>, timeout_ms: number): Promise<Reading> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${timeout_ms} ms`)), timeout_ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The library rejects a consume over the limit with its RateLimiterRes: that is a reading, not a failure.
async function read(operation: () => Promise<Reading>, timeout_ms: number): Promise<Reading> {
  try {
    return await withTimeout(operation(), timeout_ms);
  } catch (caught) {
    if (caught instanceof RateLimiterRes) return caught;
    throw caught;
  }
}

/** Counters in Redis under one key prefix, sharing one view of whether Redis is reachable. */
export function createRateLimitStore(options: RateLimitStoreOptions) {
  if (!Number.isInteger(options.timeout_ms) || options.timeout_ms < 1) {
    throw new RangeError('timeout_ms must be a positive integer');
  }
  const log = options.log.child({ module: 'rate-limit', limits: options.name });
  let degraded = false;
  let redis_retry_at_ms = 0;

  // One line when Redis stops counting and one when it is back, not one per request during an outage.
  // After a failure Redis is left alone for REDIS_RETRY_MS, so that a hung Redis costs one request the
  // timeout once a second rather than every request the timeout.
  function redisFailed(counter: string, error: unknown): void {
    redis_retry_at_ms = Date.now() + REDIS_RETRY_MS;
    if (degraded) return;
    degraded = true;
    const err = error instanceof Error ? error.message : String(error);
    log.warn({ counter, err, on_redis_down: options.on_redis_down }, 'rate limits cannot reach redis');
  }
  function redisAnswered(): void {
    if (!degraded) return;
    degraded = false;
    log.info('rate limits are counted in redis again');
  }

  /** A counter allowing `limit` hits per key per window. */
  function counter(name: string, limit: number): Counter {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`${name}: limit must be a positive integer`);
    const keyPrefix = `${options.key_prefix}:${name}`;
    const redis = new RateLimiterRedis({
      storeClient: options.redis,
      // ioredis, not node-redis: the library then calls `rlflxIncr` defined on the client (EVALSHA).
      useRedisPackage: false,
      // Fail at once while ioredis is reconnecting instead of waiting on its retries.
      rejectIfRedisNotReady: true,
      keyPrefix,
      points: limit,
      duration: WINDOW_S,
    });
    // Not passed as the library's `insuranceLimiter`: that one falls back silently, and we log and label it.
    const memory = new RateLimiterMemory({ keyPrefix, points: limit, duration: WINDOW_S });

    const toCount = (store: 'redis' | 'memory', reading: Reading): Count => ({
      store,
      limit,
      consumed: reading?.consumedPoints ?? 0,
      reset_ms: reading ? Math.max(reading.msBeforeNext, 0) : WINDOW_S * 1000,
    });

    async function count(key: string, operation: 'consume' | 'get'): Promise<Count> {
      if (Date.now() >= redis_retry_at_ms) {
        try {
          const reading = await read(() => redis[operation](key), options.timeout_ms);
          redisAnswered();
          return toCount('redis', reading);
        } catch (error) {
          redisFailed(name, error);
        }
      }
      if (options.on_redis_down !== 'per_instance') return { store: 'none', limit };
      return toCount('memory', await read(() => memory[operation](key), options.timeout_ms));
    }

    return {
      name,
      limit,
      consume: (key) => count(key, 'consume'),
      peek: (key) => count(key, 'get'),
    };
  }

  return { counter };
}

export type RateLimitStore = ReturnType<typeof createRateLimitStore>;
