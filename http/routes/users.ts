import Router from '@koa/router';
import { v7 as uuidv7 } from 'uuid';
import type { ListedUser, UserRow, UserStore } from '../../persistence/users.ts';
import { mayActFor, newApiKey, requireAdmin, requireCaller } from '../auth.ts';
import { readJsonBody } from '../body.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import { errors } from '../errors.ts';
import { fingerprint, idempotencyKey, sendStored, type IdempotencyGate } from '../idempotency.ts';
import { createUserBody, PAGE_LIMIT_DEFAULT, userIdParams, userListQuery } from '../schemas.ts';
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

/** A user in the admin's list: with the number of keys that authenticate now. */
function listedUserJson(user: ListedUser): Record<string, unknown> {
  return { ...userJson(user), api_keys_active: user.api_keys_active };
}

/**
 * `POST /api/v1/users` and `GET /api/v1/users?search=` (admin), and `GET /api/v1/users/:user_id`
 * (owner or admin).
 */
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
      const first = { id: uuidv7(), hash: apiKey.hash, prefix: apiKey.prefix };
      // The key is shown once: the stored replay carries the user without it.
      const user = await deps.users.insertAnswered({ id: uuidv7(), ...body, api_key: first }, (created) => ({
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

  router.get('/', async (ctx) => {
    requireAdmin(ctx.state);
    const query = parseInput(userListQuery, ctx.query, 'query');
    const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
    const { rows, has_more } = await deps.users.search({
      limit,
      ...(query.search !== undefined ? { search: query.search } : {}),
      ...(query.cursor !== undefined ? { after: decodeCursor(query.cursor) } : {}),
    });
    const last = rows[rows.length - 1];
    ctx.body = { data: rows.map(listedUserJson), next_cursor: has_more && last ? encodeCursor(last) : null, has_more };
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
