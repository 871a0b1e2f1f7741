import Router from '@koa/router';
import type { Redis } from 'ioredis';
import type { Sql } from '../../persistence/sql.ts';

export type HealthCheck = () => Promise<void>;

function withTimeout(check: HealthCheck, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([check(), timeout]).finally(() => clearTimeout(timer));
}

/** The checks of `GET /health`: each dependency answers a trivial query within the timeout. */
export function dependencyChecks(sql: Sql, redis: Redis): Record<string, HealthCheck> {
  return {
    postgres: async () => {
      await sql`SELECT 1`;
    },
    redis: async () => {
      await redis.ping();
    },
  };
}

/** `GET /health`: 200 when every check passes, else 503 naming the ones that failed. */
export function healthRoutes(checks: Record<string, HealthCheck>, timeoutMs: number): Router {
  const router = new Router();
  router.get('/health', async (ctx) => {
    const names = Object.keys(checks);
    const outcomes = await Promise.allSettled(names.map((name) => withTimeout(checks[name]!, timeoutMs)));
    const results = Object.fromEntries(
      names.map((name, i) => [name, outcomes[i]!.status === 'fulfilled' ? 'ok' : 'unavailable']),
    );
    const failing = names.filter((name) => results[name] !== 'ok');
    ctx.status = failing.length ? 503 : 200;
    ctx.body = failing.length
      ? {
          status: 'unavailable',
          checks: results,
          error: 'service_unavailable',
          message: `Failing: ${failing.join(', ')}.`,
          request_id: ctx.state.requestId,
        }
      : { status: 'ok', checks: results };
  });
  return router;
}
