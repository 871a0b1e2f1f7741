import Router from '@koa/router';
import { reconcile } from '../../engine/reconciliation.ts';
import type { Registry } from '../../engine/registry.ts';
import type { Sql } from '../../persistence/sql.ts';
import { requireAdmin } from '../auth.ts';

/** Admin-only operations under /api/v1/admin. */
export function adminRoutes(deps: { sql: Sql; accounts: Registry }): Router {
  const router = new Router({ prefix: '/api/v1/admin' });

  // Live actors are compared too; under traffic an actor may be a few events ahead of the replay.
  router.get('/reconciliation', async (ctx) => {
    requireAdmin(ctx.state);
    const report = await reconcile(deps.sql, {
      liveState: async (user_id) => {
        if (!deps.accounts.isAlive(user_id)) return undefined;
        const reply = await deps.accounts.ask(user_id, { kind: 'read' });
        return reply.kind === 'state' ? reply.state : undefined;
      },
    });
    ctx.body = { ok: report.discrepancies.length === 0, ...report };
  });

  return router;
}
