import type { Middleware } from 'koa';
import type { Logger } from '../logger.ts';
import type { RateLimitCounters } from '../persistence/rate-limit-counters.ts';
import { toApiError } from './app.ts';
import { reportLimits, tooManyRequests, uncounted } from './rate-limit-response.ts';
import {
  createRateLimitStore,
  REDIS_TIMEOUT_MS_DEFAULT,
  type Counter,
  type RedisDownPolicy,
} from './rate-limit-store.ts';

export interface AuthFailureLimitOptions {
  /** Counting in Redis (persistence/rate-limit-counters.ts). */
  counters: RateLimitCounters;
  /** Prefix of the counter keys; instances that share it share the counts. */
  key_prefix: string;
  /** 401 answers an address may get per window before it is refused outright. */
  max_per_min: number;
  /** A logger without `module` (the root): the counters' store adds `module: 'rate-limit'` and its name. */
  log: Logger;
  /** Default `per_instance`: see the top of `rate-limit-store.ts`. */
  on_redis_down?: RedisDownPolicy;
  timeout_ms?: number;
}

const IPV4_MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/**
 * The counting key of a client address: IPv4 as it is, IPv6 by its /64. One subscriber usually holds a
 * whole /64 and can rotate through it freely, so counting single IPv6 addresses would not limit anyone.
 */
export function addressKey(ip: string): string {
  const mapped = IPV4_MAPPED.exec(ip);
  if (mapped?.[1]) return mapped[1];
  if (!ip.includes(':')) return ip || 'unknown';
  const [head = '', tail] = (ip.split('%')[0] ?? '').split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros: string[] =
    tail === undefined ? [] : Array<string>(Math.max(8 - left.length - right.length, 0)).fill('0');
  const groups = [...left, ...zeros, ...right].slice(0, 4).map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''));
  return `${groups.join(':')}::/64`;
}

/** The failed authentications per client address, counted in Redis: one counter for every way in. */
export interface AuthFailures {
  /** Counted per `addressKey`: `peek` before checking a key, `consume` for each refusal. */
  counter: Counter;
  on_redis_down: RedisDownPolicy;
}

/**
 * The counter of failed authentications, made once per edge so that the HTTP middleware below and the
 * WebSocket sessions (http/websocket.ts) count into, and are limited by, the same numbers.
 */
export function createAuthFailures(options: AuthFailureLimitOptions): AuthFailures {
  const on_redis_down = options.on_redis_down ?? 'per_instance';
  const store = createRateLimitStore({
    name: 'auth_failures',
    counters: options.counters,
    key_prefix: options.key_prefix,
    log: options.log,
    on_redis_down,
    timeout_ms: options.timeout_ms ?? REDIS_TIMEOUT_MS_DEFAULT,
  });
  return { counter: store.counter('auth_failures', options.max_per_min), on_redis_down };
}

/**
 * Limits failed authentication per client address, against guessing API keys and webhook signatures:
 * every 401 answered to an address, on any path, is counted in Redis (a wrong Bearer key anywhere, a
 * refused bank callback signature), and once an address has `max_per_min` of them in the window, its
 * requests get 429 before the key or the signature is even looked at. Only failures count; blocking
 * reads the count, so the bank's valid callbacks are refused only while its own address is over.
 * Put it before `authenticate`, so that it sees the 401s of authentication and of the routes.
 * `ctx.ip` is the socket's address (the app does not trust X-Forwarded-For): behind a proxy, every
 * client would share the proxy's count unless `app.proxy` is set.
 */
export function authFailureLimit(authFailures: AuthFailures): Middleware {
  const { counter: failures, on_redis_down } = authFailures;

  return async (ctx, next) => {
    const key = addressKey(ctx.ip);
    const seen = await failures.peek(key);
    if (seen.store === 'none') {
      uncounted(ctx, on_redis_down);
    } else if (seen.consumed >= seen.limit) {
      reportLimits(ctx, [{ ...seen, policy: failures.name }]);
      tooManyRequests(seen.reset_ms);
    }
    try {
      await next();
    } catch (caught) {
      if (toApiError(caught).status === 401) await failures.consume(key);
      throw caught;
    }
    if (ctx.status === 401) await failures.consume(key);
  };
}
