// Rate-limit counting in Redis: every request's limits are counted by one Lua script (its limits in
// order, stopping at the first one it is over), and the scripts of all requests that ask in the same
// turn of the event loop go to Redis as ONE call (one write, one reply, one Lua run). The keys and the
// arithmetic are rate-limiter-flexible's (`<prefix>:<name>:<key>`, SET NX EX + INCRBY + PTTL), so
// instances of the previous version sharing the Redis count in the same buckets. One call touches keys
// of many users, so it needs a single Redis (or a cluster with every limiter key in one hash slot).
// What to do when Redis fails or is slow is the HTTP limiter's decision (http/rate-limit-store.ts).
import type { Redis } from 'ioredis';

/** rate-limiter-flexible counts in fixed windows: the first hit starts a 60 s window, then the key expires. */
export const WINDOW_S = 60;

/** At most this many requests' counts go in one script call (a longer script would hold Redis up). */
const REQUESTS_PER_CALL_MAX = 256;

/** One limit to count for a request: a hit (`consume`) or a read (`peek`), over when past `limit`. */
export interface CountStep {
  /** The counter's key in Redis. */
  key: string;
  op: 'consume' | 'peek';
  limit: number;
}

/** A step's reading: the count (-1 for a peeked key that does not exist) and the key's PTTL in ms. */
export interface CountReading {
  count: number;
  ttl_ms: number;
}

/** Counting in one Redis; `count` is atomic per request and batched across requests. */
export interface RateLimitCounters {
  /**
   * Counts one request's steps in order in one script run, stopping after the first step over its
   * limit: resolves with a reading per step counted. Rejects when Redis is not ready, does not answer
   * within `timeout_ms`, fails, or a key holds something other than a count (that request alone).
   */
  count(steps: readonly CountStep[], timeout_ms: number): Promise<CountReading[]>;
}

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

const counters = new WeakMap<Redis, RateLimitCounters>();

/** The counters on `redis`: one batcher per connection, so that every limit on it shares one call a turn. */
export function rateLimitCounters(redis: Redis): RateLimitCounters {
  const known = counters.get(redis);
  if (known) return known;
  const batcher = createBatcher(redis);
  const made: RateLimitCounters = {
    async count(steps, timeout_ms) {
      const keys = steps.map((step) => step.key);
      const args = [String(steps.length)];
      for (const step of steps) args.push(step.op === 'consume' ? 'c' : 'p', String(step.limit));
      const reply = await batcher.count(keys, args, timeout_ms);
      const done = reply[0] ?? 0;
      return Array.from({ length: done }, (_, s) => ({
        count: Number(reply[1 + 2 * s]),
        ttl_ms: Number(reply[2 + 2 * s]),
      }));
    },
  };
  counters.set(redis, made);
  return made;
}
