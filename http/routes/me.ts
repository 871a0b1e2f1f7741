import Router from '@koa/router';
import type { UserStore } from '../../persistence/users.ts';
import { requireCaller } from '../auth.ts';
import { errors } from '../errors.ts';
import { userJson } from './users.ts';

/**
 * `GET /api/v1/me`: who the API key belongs to, `{id, name, email, created_at, kind}` (the admin's
 * `id` is "admin" and the rest null), so that a client holding only a key (the viewer) learns its user id.
 */
export function meRoutes(deps: { users: UserStore }): Router {
  const router = new Router();

  router.get('/api/v1/me', async (ctx) => {
    const caller = requireCaller(ctx.state);
    if (caller.kind === 'admin') {
      ctx.body = { id: caller.id, name: null, email: null, created_at: null, kind: caller.kind };
      return;
    }
    // Authentication found the user a moment ago; only a user deleted since is missing here.
    const user = await deps.users.findById(caller.id);
    if (!user) throw errors.unauthenticated();
    ctx.body = { ...userJson(user), kind: caller.kind };
  });

  return router;
}
