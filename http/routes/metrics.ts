import Router from '@koa/router';
import type { Registry } from 'prom-client';
import { requireAdmin } from '../auth.ts';

/**
 * `GET /metrics` in Prometheus's text format, for the admin key only (401 without a key, 403 with a
 * user's), on the public port and on the dashboard's.
 */
export function metricsRoutes(registry: Registry): Router {
  const router = new Router();

  router.get('/metrics', async (ctx) => {
    requireAdmin(ctx.state);
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });

  return router;
}
