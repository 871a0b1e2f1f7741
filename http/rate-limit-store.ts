// When Redis is unreachable or slow, each counter falls back to an in-memory counter in this process
// (`on_redis_down: 'per_instance'`, the default). A Redis outage must not stop payments: money is
// protected by the account actors and the journal, not by the limiter, so failing closed would turn a
// cache outage into a payments outage. Failing wide open would drop all protection at the moment the
// system is weakest; per-instance counters keep every limit in force, only multiplied by the number of
// instances (N instances allow up to N × the limit). Responses say so with `X-RateLimit-Status: degraded`.
// The memory holds one entry per key seen in the last window, each dropped when its window ends.
//
// Counting in Redis, one script call per turn of the event loop, is persistence/rate-limit-counters.ts.
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../logger.ts';
import {
  WINDOW_S,
  type CountReading,
  type CountStep,
  type RateLimitCounters,
} from '../persistence/rate-limit-counters.ts';

/** A Redis call slower than this counts as Redis being down; a local Redis answers in well under 1 ms. */
export const REDIS_TIMEOUT_MS_DEFAULT = 250;

/** How long counters skip Redis after it failed, before they try it again. */
export const REDIS_RETRY_MS = 1000;

/**
 * Requests' counts of one store waiting for Redis (queued for the turn's call, or in a call not yet
 * answered) at most, by default. Each waits at most `timeout_ms`, so more than this means Redis is
 * not keeping up: past it, the store counts as Redis being down (`on_redis_down`) for REDIS_RETRY_MS.
 */
export const COUNTS_PENDING_MAX_DEFAULT = 4096;

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

/**
 * One step of `countInOrder`: count a hit (`consume`, over when the count passes the limit) or read
 * the count (`peek`, over when it has reached the limit).
 */
export interface Step {
  counter: Counter;
  key: string;
  op: 'consume' | 'peek';
}

export interface RateLimitStoreOptions {
  /** Which limits these are, in the store's log lines. */
  name: string;
  /** Counting in Redis (persistence/rate-limit-counters.ts); stores on one Redis share one. */
  counters: RateLimitCounters;
  key_prefix: string;
  log: Logger;
  on_redis_down: RedisDownPolicy;
  /** A Redis call slower than this counts as Redis being down, so a hung Redis cannot stall requests. */
  timeout_ms: number;
  /** Requests' counts waiting for Redis at most; past it, counted as Redis being down. */
  counts_pending_max?: number;
}

type Reading = RateLimiterRes | null;

/** Counter internals shared between a store and the batched Redis calls. */
interface CounterState extends Counter {
  readonly redisKey: (key: string) => string;
  readonly memory: RateLimiterMemory;
  readonly store: StoreState;
}

interface StoreState {
  readonly counters: RateLimitCounters;
  readonly on_redis_down: RedisDownPolicy;
  readonly timeout_ms: number;
  readonly counts_pending_max: number;
  /** Requests' counts of this store sent to the batcher and not yet settled. */
  counts_pending: number;
  /** Whether Redis may be asked now (it has not failed in the last REDIS_RETRY_MS). */
  usable(): boolean;
  failed(counter: string, error: unknown): void;
  answered(): void;
}

const states = new WeakMap<Counter, CounterState>();

// The library rejects a consume over the limit with its RateLimiterRes: that is a reading, not a failure.
async function read(operation: () => Promise<Reading>): Promise<Reading> {
  try {
    return await operation();
  } catch (caught) {
    if (caught instanceof RateLimiterRes) return caught;
    throw caught;
  }
}

function isOver(step: Step, count: Count): boolean {
  if (count.store === 'none') return false;
  return step.op === 'peek' ? count.consumed >= count.limit : count.consumed > count.limit;
}

/** A step counted without Redis: in memory (`per_instance`), or not at all. */
async function countWithoutRedis(step: Step, state: CounterState): Promise<Count> {
  if (state.store.on_redis_down !== 'per_instance') return { store: 'none', limit: state.limit };
  const reading = await read(() =>
    step.op === 'consume' ? state.memory.consume(step.key) : state.memory.get(step.key),
  );
  return {
    store: 'memory',
    limit: state.limit,
    consumed: reading?.consumedPoints ?? 0,
    reset_ms: reading ? Math.max(reading.msBeforeNext, 0) : WINDOW_S * 1000,
  };
}

/**
 * Counts one request's limits in order, stopping after the first one it is over (a consume past the
 * limit, or a peek at it): the steps after it are not counted. Returns a count per step counted. Steps
 * whose store can reach Redis are counted there in one atomic script, batched with other requests; a
 * failed or slow Redis marks each of their stores down and counts them as `on_redis_down` says. A
 * `none` count (Redis down, nothing counted) does not stop the steps after it. Never rejects.
 */
export async function countInOrder(steps: readonly Step[]): Promise<Count[]> {
  const counts: Count[] = [];
  let i = 0;
  while (i < steps.length) {
    const first = stateOf(steps[i]!.counter);
    if (!first.store.usable()) {
      const count = await countWithoutRedis(steps[i]!, first);
      counts.push(count);
      if (isOver(steps[i]!, count)) return counts;
      i += 1;
      continue;
    }
    // The longest run of steps from here that can all be counted in this Redis, in one script run.
    const run: CountStep[] = [];
    let timeout_ms = Infinity;
    let end = i;
    for (; end < steps.length; end += 1) {
      const state = stateOf(steps[end]!.counter);
      if (state.store.counters !== first.store.counters || !state.store.usable()) break;
      run.push({ key: state.redisKey(steps[end]!.key), op: steps[end]!.op, limit: state.limit });
      timeout_ms = Math.min(timeout_ms, state.store.timeout_ms);
    }
    let readings: CountReading[];
    try {
      readings = await countPending(first.store, run, timeout_ms);
    } catch (error) {
      // Each store of the run logs that Redis is down, in step order; the loop then counts without it.
      for (let s = i; s < end; s += 1) {
        const store = stateOf(steps[s]!.counter).store;
        if (store.usable()) store.failed(steps[s]!.counter.name, error);
      }
      continue;
    }
    let answered: StoreState | undefined;
    for (let s = i; s < end; s += 1) {
      const store = stateOf(steps[s]!.counter).store;
      if (store !== answered) store.answered();
      answered = store;
    }
    const done = readings.length;
    readings.forEach(({ count, ttl_ms }, s) => {
      const limit = stateOf(steps[i + s]!.counter).limit;
      counts.push(
        count < 0
          ? { store: 'redis', limit, consumed: 0, reset_ms: WINDOW_S * 1000 }
          : { store: 'redis', limit, consumed: count, reset_ms: Math.max(ttl_ms, 0) },
      );
    });
    if (done < end - i || isOver(steps[i + done - 1]!, counts[counts.length - 1]!)) return counts;
    i = end;
  }
  return counts;
}

/** Counts in Redis, unless the store already has `counts_pending_max` counts waiting there (then rejects). */
async function countPending(store: StoreState, run: CountStep[], timeout_ms: number) {
  if (store.counts_pending >= store.counts_pending_max) {
    throw new Error(`${store.counts_pending_max} rate-limit counts are already waiting for redis`);
  }
  store.counts_pending += 1;
  try {
    return await store.counters.count(run, timeout_ms);
  } finally {
    store.counts_pending -= 1;
  }
}

function stateOf(counter: Counter): CounterState {
  const state = states.get(counter);
  if (!state) throw new Error(`counter ${counter.name} was not made by createRateLimitStore`);
  return state;
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
  const store: StoreState = {
    counters: options.counters,
    on_redis_down: options.on_redis_down,
    timeout_ms: options.timeout_ms,
    counts_pending_max: options.counts_pending_max ?? COUNTS_PENDING_MAX_DEFAULT,
    counts_pending: 0,
    usable: () => Date.now() >= redis_retry_at_ms,
    failed(counter, error) {
      redis_retry_at_ms = Date.now() + REDIS_RETRY_MS;
      if (degraded) return;
      degraded = true;
      const err = error instanceof Error ? error.message : String(error);
      log.warn({ counter, err, on_redis_down: options.on_redis_down }, 'rate limits cannot reach redis');
    },
    answered() {
      if (!degraded) return;
      degraded = false;
      log.info('rate limits are counted in redis again');
    },
  };

  /** A counter allowing `limit` hits per key per window. */
  function counter(name: string, limit: number): Counter {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`${name}: limit must be a positive integer`);
    // rate-limiter-flexible's key layout (`keyPrefix:key`), so that both versions count in the same keys.
    const keyPrefix = `${options.key_prefix}:${name}`;
    // Not the library's `insuranceLimiter`: that one falls back silently, and we log and label it.
    const memory = new RateLimiterMemory({ keyPrefix, points: limit, duration: WINDOW_S });
    const one = async (key: string, op: Step['op']): Promise<Count> =>
      (await countInOrder([{ counter: made, key, op }]))[0]!;
    const made: Counter = {
      name,
      limit,
      consume: (key) => one(key, 'consume'),
      peek: (key) => one(key, 'peek'),
    };
    states.set(made, { ...made, redisKey: (key) => `${keyPrefix}:${key}`, memory, store });
    return made;
  }

  return { counter };
}

export type RateLimitStore = ReturnType<typeof createRateLimitStore>;
