import type { Context, Middleware } from 'koa';
import type { Logger } from '../logger.ts';
import type { RateLimitCounters } from '../persistence/rate-limit-counters.ts';
import type { Caller } from './auth.ts';
import { reportLimits, tooManyRequests, uncounted, type Measured } from './rate-limit-response.ts';
import {
  countInOrder,
  createRateLimitStore,
  REDIS_TIMEOUT_MS_DEFAULT,
  type Counter,
  type RedisDownPolicy,
  type Step,
} from './rate-limit-store.ts';

export interface RateLimitOptions {
  /** Counting in Redis (persistence/rate-limit-counters.ts). */
  counters: RateLimitCounters;
  /** Prefix of every counter key; instances that share it share the limits. */
  key_prefix: string;
  global_per_min: number;
  balance_per_min: number;
  transactions_per_min: number;
  /** A logger without `module` (the root): the counters' store adds `module: 'rate-limit'` and its name. */
  log: Logger;
  /** Default `per_instance`: see the top of `rate-limit-store.ts`. */
  on_redis_down?: RedisDownPolicy;
  timeout_ms?: number;
}

// @koa/router matches case-insensitively and with an optional trailing slash; these must match the same.
const API_PATH = /^\/api\/v1(?:\/|$)/i;
const BALANCE_PATH = /^\/api\/v1\/users\/([^/]+)\/balance\/?$/i;
const USER_TRANSACTIONS_PATH = /^\/api\/v1\/users\/([^/]+)\/transactions\/?$/i;
const TRANSACTION_LISTS_PATH = /^\/api\/v1\/(?:deposits|withdrawals|transactions)\/?$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The per-caller limits: balance reads, and the transaction lists (one limit for every list). */
export type PerUserPolicy = 'balance' | 'transactions';

/** A per-caller limit a request falls under, and whose resources it reads (the admin's bucket). */
export interface Charge {
  policy: PerUserPolicy;
  target: string | undefined;
}

/** Which per-user limit a request falls under, and whose resources it reads. */
function perUserPolicy(ctx: Context): Charge | undefined {
  // @koa/router answers HEAD with the GET route, so HEAD is counted like GET.
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return undefined;
  const balance = BALANCE_PATH.exec(ctx.path);
  if (balance) return { policy: 'balance', target: balance[1] };
  const transactions = USER_TRANSACTIONS_PATH.exec(ctx.path);
  if (transactions) return { policy: 'transactions', target: transactions[1] };
  if (TRANSACTION_LISTS_PATH.test(ctx.path)) {
    const target = ctx.query.user_id;
    return { policy: 'transactions', target: typeof target === 'string' ? target : undefined };
  }
  return undefined;
}

/**
 * Whose bucket a request is counted in. A user is counted by their own id, whichever user the path
 * names (reading someone else's balance is a 404 that still costs the caller). The admin is counted
 * per target user, in buckets apart from the users' own: the admin is one trusted operator whose
 * tools read across all users, so a single admin bucket would cap operations at 10 balances a minute
 * for the whole service, and sharing the user's bucket would let operations spend a user's quota.
 * The admin's total is still bounded by the global limit.
 */
function bucket(caller: Caller, target: string | undefined): string {
  if (caller.kind === 'user') return `user:${caller.id}`;
  return `admin:${target !== undefined && UUID.test(target) ? target.toLowerCase() : 'all'}`;
}

/** The API's counters in Redis: the global one (key `all`), and the per-caller ones. */
export interface ApiLimits {
  global: Counter;
  perUser: Record<PerUserPolicy, Counter>;
  on_redis_down: RedisDownPolicy;
}

/**
 * The API's counters, made once per edge so that the HTTP middleware below and the WebSocket
 * connections (http/websocket.ts, which count against the global limit) share them.
 */
export function createApiLimits(options: RateLimitOptions): ApiLimits {
  const on_redis_down = options.on_redis_down ?? 'per_instance';
  const store = createRateLimitStore({
    name: 'api',
    counters: options.counters,
    key_prefix: options.key_prefix,
    log: options.log,
    on_redis_down,
    timeout_ms: options.timeout_ms ?? REDIS_TIMEOUT_MS_DEFAULT,
  });
  return {
    global: store.counter('global', options.global_per_min),
    perUser: {
      balance: store.counter('balance', options.balance_per_min),
      transactions: store.counter('transactions', options.transactions_per_min),
    },
    on_redis_down,
  };
}

/**
 * Counts one request against `limits`: the caller's own limits (`charges`) first, then the global
 * one, in one Redis call (a caller already over their own limit must not use up everyone's global
 * budget: countInOrder stops at the first limit a request is over). Writes the limit headers; returns
 * how long until the exhausted limit resets when the request is over one, else undefined. Charges
 * count only for a caller. The REST middleware below finds a request's charge by its path; GraphQL
 * finds one per balance or list field of its operation.
 */
export async function countRequest(
  limits: ApiLimits,
  ctx: Context,
  charges: readonly Charge[],
): Promise<number | undefined> {
  const caller = ctx.state.caller;
  const steps: Step[] = [];
  if (caller) {
    for (const charge of charges) {
      steps.push({ counter: limits.perUser[charge.policy], key: bucket(caller, charge.target), op: 'consume' });
    }
  }
  steps.push({ counter: limits.global, key: 'all', op: 'consume' });
  const counts = await countInOrder(steps);
  const measured: Measured[] = [];
  let limited = false;
  for (let i = 0; i < counts.length; i += 1) {
    const count = counts[i]!;
    if (count.store === 'none') {
      uncounted(ctx, limits.on_redis_down);
      continue;
    }
    measured.push({ ...count, policy: steps[i]!.counter.name });
    limited ||= count.consumed > count.limit;
  }
  reportLimits(ctx, measured);
  if (!limited) return undefined;
  const exhausted = measured.filter((m) => m.consumed > m.limit);
  return Math.max(...exhausted.map((m) => m.reset_ms));
}

/**
 * The API's rate limits, counted in Redis so that they hold across instances: a global limit over
 * every `/api/v1` request, and per caller the balance limit and one shared limit for the transaction
 * lists (`/users/:id/transactions`, `/transactions`, `/deposits`, `/withdrawals`). Fixed 60 s windows. Runs after
 * authentication; anonymous requests only count against the global limit (their routes answer 401).
 */
export function rateLimits(limits: ApiLimits): Middleware {
  return async (ctx, next) => {
    if (!API_PATH.test(ctx.path)) {
      await next();
      return;
    }
    const rule = ctx.state.caller ? perUserPolicy(ctx) : undefined;
    const retry_ms = await countRequest(limits, ctx, rule ? [rule] : []);
    if (retry_ms !== undefined) tooManyRequests(retry_ms);
    await next();
  };
}
