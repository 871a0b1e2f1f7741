// When Redis is unreachable or slow, each counter falls back to an in-memory counter in this process
// (`on_redis_down: 'per_instance'`, the default). A Redis outage must not stop payments: money is
// protected by the account actors and the journal, not by the limiter, so failing closed would turn a
// cache outage into a payments outage. Failing wide open would drop all protection at the moment the
// system is weakest; per-instance counters keep every limit in force, only multiplied by the number of
// instances (N instances allow up to N × the limit). Responses say so with `X-RateLimit-Status: degraded`.
// The memory holds one entry per key seen in the last window, each dropped when its window ends.
//
// Counting in Redis: every request's limits are counted by one Lua script (`countInOrder`: its limits in
// order, stopping at the first one it is over), and the scripts of all requests that ask in the same
// turn of the event loop go to Redis as ONE call (one write, one reply, one Lua run). The keys and the
// arithmetic are rate-limiter-flexible's (`<prefix>:<name>:<key>`, SET NX EX + INCRBY + PTTL), so
// instances of the previous version sharing the Redis count in the same buckets. One call touches keys
// of many users, so it needs a single Redis (or a cluster with every limiter key in one hash slot).
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../logger.ts';

/** rate-limiter-flexible counts in fixed windows: the first hit starts a 60 s window, then the key expires. */
export const WINDOW_S = 60;

/** A Redis call slower than this counts as Redis being down; a local Redis answers in well under 1 ms. */
export const REDIS_TIMEOUT_MS_DEFAULT = 250;

/** How long counters skip Redis after it failed, before they try it again. */
export const REDIS_RETRY_MS = 1000;

/** At most this many requests' counts go in one script call (a longer script would hold Redis up). */
const REQUESTS_PER_CALL_MAX = 256;

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
  redis: Redis;
  key_prefix: string;
  log: Logger;
  on_redis_down: RedisDownPolicy;
  /** A Redis call slower than this counts as Redis being down, so a hung Redis cannot stall requests. */
  timeout_ms: number;
  /** Requests' counts waiting for Redis at most; past it, counted as Redis being down. */
  counts_pending_max?: number;
}

type Reading = RateLimiterRes | null;

// KEYS: every step's key, in order. ARGV: the window in seconds, the number of requests, then per request
// its number of steps and per step its kind ('c' consume, 'p' peek) and limit. A request's steps stop at
// the first one over its limit. Reply per request: the number of steps done, then per step done the count
// (-1 for a peeked key that does not exist) and its PTTL; -1 steps done when a key held something other
// than a count (that request fails alone). The consume step is rate-limiter-flexible's script.
const COUNT_SCRIPT = `
local window = ARGV[1]
local requests = tonumber(ARGV[2])
local a = 3
local k = 1
local out = {}
for r = 1, requests do
  local steps = tonumber(ARGV[a])
  a = a + 1
  local head = #out + 1
  out[head] = 0
  local over = false
  for s = 1, steps do
    local kind = ARGV[a]
    local limit = tonumber(ARGV[a + 1])
    local key = KEYS[k]
    a = a + 2
    k = k + 1
    if not over then
      local count
      local ttl
      if kind == 'p' then
        local value = redis.pcall('get', key)
        if value == false then
          count = -1
        else
          count = tonumber(value)
        end
        ttl = redis.call('pttl', key)
        over = count == nil or count >= limit
      else
        redis.call('set', key, 0, 'EX', window, 'NX')
        count = redis.pcall('incrby', key, 1)
        ttl = redis.call('pttl', key)
        if ttl == -1 then
          redis.call('expire', key, window)
          ttl = 1000 * tonumber(window)
        end
        over = type(count) ~= 'number' or count > limit
      end
      if type(count) == 'number' then
        out[#out + 1] = count
        out[#out + 1] = ttl
        out[head] = out[head] + 1
      else
        for j = #out, head + 1, -1 do
          out[j] = nil
        end
        out[head] = -1
      end
    end
  end
end
return out
`;

/** Counter internals shared between a store and the batched Redis calls. */
interface CounterState extends Counter {
  readonly redisKey: (key: string) => string;
  readonly memory: RateLimiterMemory;
  readonly store: StoreState;
}

interface StoreState {
  readonly redis: Redis;
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

/** One request's steps waiting for the next call, and what to do with the reply (settled once). */
class Queued {
  settled = false;
  constructor(
    readonly keys: string[],
    /** The request's ARGV: its number of steps, then each step's kind and limit. */
    readonly args: string[],
    readonly timeout_ms: number,
    readonly deadline_ms: number,
    private readonly onReply: (reply: number[]) => void,
    private readonly onError: (error: Error) => void,
  ) {}

  resolve(reply: number[]): void {
    if (this.settled) return;
    this.settled = true;
    this.onReply(reply);
  }

  reject(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.onError(error);
  }
}

type CountingRedis = Redis & { pgwCountInOrder(...args: (string | number)[]): Promise<number[]> };

/**
 * Gathers the requests that ask Redis during one turn of the event loop and sends them as one script
 * call when the turn ends (setImmediate: after every socket that was readable has been read). One timer
 * per call bounds the wait; a request whose deadline passes is failed alone, a late reply ignored.
 */
function createBatcher(redis: Redis) {
  if (typeof (redis as unknown as Partial<CountingRedis>).pgwCountInOrder !== 'function') {
    redis.defineCommand('pgwCountInOrder', { lua: COUNT_SCRIPT });
  }
  const counting = redis as unknown as CountingRedis;
  let queue: Queued[] = [];

  function send(batch: Queued[]): void {
    if (redis.status !== 'ready') {
      const error = new Error('Redis connection is not ready');
      for (const queued of batch) queued.reject(error);
      return;
    }
    const keys: string[] = [];
    const args: string[] = [String(WINDOW_S), String(batch.length)];
    let first_deadline_ms = Infinity;
    for (const queued of batch) {
      for (const key of queued.keys) keys.push(key);
      for (const arg of queued.args) args.push(arg);
      first_deadline_ms = Math.min(first_deadline_ms, queued.deadline_ms);
    }
    let timer: NodeJS.Timeout | undefined;
    function expire(): void {
      const now = Date.now();
      let next = Infinity;
      for (const queued of batch) {
        if (queued.settled) continue;
        if (queued.deadline_ms <= now) queued.reject(new Error(`redis did not answer within ${queued.timeout_ms} ms`));
        else next = Math.min(next, queued.deadline_ms);
      }
      timer = next === Infinity ? undefined : setTimeout(expire, next - now);
    }
    timer = setTimeout(expire, Math.max(0, first_deadline_ms - Date.now()));
    counting.pgwCountInOrder(keys.length, ...keys, ...args).then(
      (reply) => {
        clearTimeout(timer);
        let at = 0;
        for (const queued of batch) {
          const done = Number(reply[at] ?? 0);
          if (done < 0) {
            queued.reject(new Error('a rate limit key in redis does not hold a count'));
            at += 1;
          } else {
            queued.resolve(reply.slice(at, at + 1 + 2 * done));
            at += 1 + 2 * done;
          }
        }
      },
      (error: unknown) => {
        clearTimeout(timer);
        const failure = error instanceof Error ? error : new Error(String(error));
        for (const queued of batch) queued.reject(failure);
      },
    );
  }

  function flush(): void {
    const all = queue;
    queue = [];
    for (let i = 0; i < all.length; i += REQUESTS_PER_CALL_MAX) send(all.slice(i, i + REQUESTS_PER_CALL_MAX));
  }

  return {
    /**
     * Counts one request's steps (all on this Redis): `keys` and `args` as the script takes them for one
     * request. Resolves with [steps done, count, pttl, count, pttl…].
     */
    count(keys: string[], args: string[], timeout_ms: number): Promise<number[]> {
      return new Promise((resolve, reject) => {
        if (queue.length === 0) setImmediate(flush);
        queue.push(new Queued(keys, args, timeout_ms, Date.now() + timeout_ms, resolve, reject));
      });
    },
  };
}

const batchers = new WeakMap<Redis, ReturnType<typeof createBatcher>>();

function batcherOf(redis: Redis): ReturnType<typeof createBatcher> {
  let batcher = batchers.get(redis);
  if (!batcher) {
    batcher = createBatcher(redis);
    batchers.set(redis, batcher);
  }
  return batcher;
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
    // The longest run of steps from here that can all be counted in this Redis, as the script takes them.
    const keys: string[] = [];
    const args: string[] = [''];
    let timeout_ms = Infinity;
    let end = i;
    for (; end < steps.length; end += 1) {
      const state = stateOf(steps[end]!.counter);
      if (state.store.redis !== first.store.redis || !state.store.usable()) break;
      keys.push(state.redisKey(steps[end]!.key));
      args.push(steps[end]!.op === 'consume' ? 'c' : 'p', String(state.limit));
      timeout_ms = Math.min(timeout_ms, state.store.timeout_ms);
    }
    args[0] = String(end - i);
    let reply: number[];
    try {
      reply = await countPending(first.store, keys, args, timeout_ms);
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
    const done = reply[0] ?? 0;
    for (let s = 0; s < done; s += 1) {
      const limit = stateOf(steps[i + s]!.counter).limit;
      const value = Number(reply[1 + 2 * s]);
      counts.push(
        value < 0
          ? { store: 'redis', limit, consumed: 0, reset_ms: WINDOW_S * 1000 }
          : { store: 'redis', limit, consumed: value, reset_ms: Math.max(Number(reply[2 + 2 * s]), 0) },
      );
    }
    if (done < end - i || isOver(steps[i + done - 1]!, counts[counts.length - 1]!)) return counts;
    i = end;
  }
  return counts;
}

/** Counts in Redis, unless the store already has `counts_pending_max` counts waiting there (then rejects). */
async function countPending(store: StoreState, keys: string[], args: string[], timeout_ms: number) {
  if (store.counts_pending >= store.counts_pending_max) {
    throw new Error(`${store.counts_pending_max} rate-limit counts are already waiting for redis`);
  }
  store.counts_pending += 1;
  try {
    return await batcherOf(store.redis).count(keys, args, timeout_ms);
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
    redis: options.redis,
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
