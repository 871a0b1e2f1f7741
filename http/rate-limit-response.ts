import type { Context } from 'koa';
import { errors, type ApiError } from './errors.ts';
import { WINDOW_S } from '../persistence/rate-limit-counters.ts';
import type { Count, RedisDownPolicy } from './rate-limit-store.ts';

/** A limit that counted this request, named as in the `RateLimit-Policy` field. */
export type Measured = Extract<Count, { store: 'redis' | 'memory' }> & { policy: string };

const remaining = (measured: Measured) => Math.max(measured.limit - measured.consumed, 0);
const seconds = (ms: number) => Math.max(Math.ceil(ms / 1000), 0);

/**
 * Writes the limits that counted this request. `X-RateLimit-*` carry the most restrictive one (the
 * least remaining; on a tie the later reset), with the reset in unix seconds as the contract says.
 * `RateLimit-Policy` and `RateLimit` list every limit in the syntax of
 * draft-ietf-httpapi-ratelimit-headers-10 (September 2025), sections 3 and 4:
 * `RateLimit-Policy: "balance";q=10;w=60` and `RateLimit: "balance";r=3;t=42`, `t` being delta seconds.
 */
export function reportLimits(ctx: Context, measured: readonly Measured[]): void {
  const [first, ...others] = measured;
  if (!first) return;
  const tightest = others.reduce((best, next) => {
    const fewer = remaining(next) < remaining(best);
    const tie = remaining(next) === remaining(best) && next.reset_ms > best.reset_ms;
    return fewer || tie ? next : best;
  }, first);
  ctx.set('X-RateLimit-Limit', String(tightest.limit));
  ctx.set('X-RateLimit-Remaining', String(remaining(tightest)));
  ctx.set('X-RateLimit-Reset', String(Math.ceil((Date.now() + tightest.reset_ms) / 1000)));
  ctx.set('RateLimit-Policy', measured.map((m) => `"${m.policy}";q=${m.limit};w=${WINDOW_S}`).join(', '));
  ctx.set('RateLimit', measured.map((m) => `"${m.policy}";r=${remaining(m)};t=${seconds(m.reset_ms)}`).join(', '));
  if (measured.some((m) => m.store === 'memory')) ctx.set('X-RateLimit-Status', 'degraded');
}

/** The 429 of a limit that resets in `retry_ms`, with its `Retry-After` in the header and the body. */
export function rateLimitError(retry_ms: number): ApiError {
  const retry_after = Math.max(seconds(retry_ms), 1);
  return errors.rateLimitExceeded({ retry_after }).with({ retry_after });
}

/**
 * Refuses the request with 429; `retry_ms` is how long until the exhausted limit resets. Thrown, so that
 * the app writes it in the shape of the path asked (the contract's body, or GraphQL's errors on /graphql).
 */
export function tooManyRequests(retry_ms: number): never {
  throw rateLimitError(retry_ms);
}

/** A request Redis could not count: let it through, marked, or refuse it, as the policy says. */
export function uncounted(ctx: Context, policy: RedisDownPolicy): void {
  if (policy === 'deny') {
    throw errors.rateLimitUnavailable();
  }
  ctx.set('X-RateLimit-Status', 'unavailable');
}
