import Router from '@koa/router';
import { v7 as uuidv7 } from 'uuid';
import type { UserRow, UserStore } from '../../persistence/users.ts';
import { mayActFor, newApiKey, requireAdmin, requireCaller } from '../auth.ts';
import { readJsonBody } from '../body.ts';
import { errors } from '../errors.ts';
import { fingerprint, idempotencyKey, sendStored, type IdempotencyGate } from '../idempotency.ts';
import { createUserBody, userIdParams } from '../schemas.ts';
import { parseInput } from '../validation.ts';

export interface UserRoutesDeps {
  users: UserStore;
  gate: IdempotencyGate;
  bodySizeMaxBytes: number;
}

/** The public shape of a user; the key appears only in the creation response. */
export function userJson(user: UserRow): Record<string, unknown> {
  return { id: user.id, name: user.name, email: user.email, created_at: user.created_at.toISOString() };
}

/** `POST /api/v1/users` (admin) and `GET /api/v1/users/:user_id` (owner or admin). */
export function userRoutes(deps: UserRoutesDeps): Router {
  const router = new Router({ prefix: '/api/v1/users' });

  router.post('/', async (ctx) => {
    const caller = requireAdmin(ctx.state);
    const key = idempotencyKey(ctx);
    const body = parseInput(createUserBody, await readJsonBody(ctx, deps.bodySizeMaxBytes));
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, body) };
    const { response, replayed } = await deps.gate.run(attempt, async () => {
      ctx.state.writeSent = true;
      const apiKey = newApiKey();
      // The key is shown once: the stored replay carries the user without it.
      const user = await deps.users.insertAnswered({ id: uuidv7(), ...body, api_key_hash: apiKey.hash }, (created) => ({
        ...attempt,
        user_id: created.id,
        answer: { status_code: 201, body: JSON.stringify({ ...userJson(created), api_key: null }) },
      }));
      if (!user) throw errors.emailTaken();
      return {
        response: { status: 201, body: JSON.stringify({ ...userJson(user), api_key: apiKey.key }) },
        replayed: false,
      };
    });
    sendStored(ctx, response, replayed);
  });

  router.get('/:user_id', async (ctx) => {
    const caller = requireCaller(ctx.state);
    const { user_id } = parseInput(userIdParams, ctx.params, 'path');
    const user = mayActFor(caller, user_id) ? await deps.users.findById(user_id) : undefined;
    if (!user) throw errors.notFound({ what: 'user' });
    ctx.body = userJson(user);
  });

  return router;
}
