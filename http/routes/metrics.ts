import Router from '@koa/router';
import type { Registry } from 'prom-client';
import { requireAdmin } from '../auth.ts';

/**
 * `GET /metrics` in Prometheus's text format. On the public port only the admin key may read it
 * (401 without a key, 403 with a user's); the dashboard's internal port serves it to anyone.
 */
export function metricsRoutes(registry: Registry, options: { admin_only: boolean }): Router {
  const router = new Router();

  router.get('/metrics', async (ctx) => {
    if (options.admin_only) requireAdmin(ctx.state);
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });

  return router;
}
