import Router from '@koa/router';
import type { Context } from 'koa';
import type { z } from 'zod';
import { v7 as uuidv7 } from 'uuid';
import type { ApiKeyRow, ApiKeyStore } from '../../persistence/api-keys.ts';
import type { UserStore } from '../../persistence/users.ts';
import { mayActFor, newApiKey, requireCaller, type Caller, type KeyCache } from '../auth.ts';
import { readOptionalJsonBody } from '../body.ts';
import { errors } from '../errors.ts';
import { fingerprint, idempotencyKey, sendStored, type IdempotencyGate } from '../idempotency.ts';
import { apiKeyParams, createApiKeyBody, userIdParams } from '../schemas.ts';
import { parseInput } from '../validation.ts';

/**
 * The most keys a user holds at once: two let a client switch over without a moment with no working
 * key (add the new one, deploy it, revoke the old one), and a third means one was forgotten.
 */
export const API_KEYS_ACTIVE_MAX = 2;

export interface ApiKeyRoutesDeps {
  users: UserStore;
  apiKeys: ApiKeyStore;
  /** This process's cache of authenticated keys: a key revoked here is forgotten here at once. */
  keyCache: KeyCache;
  gate: IdempotencyGate;
  bodySizeMaxBytes: number;
}

/** A key as the API shows it: never its secret, only its first characters. */
export function apiKeyJson(key: ApiKeyRow): Record<string, unknown> {
  return {
    id: key.id,
    user_id: key.user_id,
    label: key.label,
    prefix: key.prefix,
    created_at: key.created_at.toISOString(),
    revoked_at: key.revoked_at?.toISOString() ?? null,
  };
}

/**
 * A user's API keys, for the user and the admin: list, add (the key shown once), revoke. Another
 * user's keys are 404, as their other resources are. A revoked key stops authenticating on this
 * instance at once and on the others within AUTH_CACHE_TTL_MS (their caches' life).
 */
export function apiKeyRoutes(deps: ApiKeyRoutesDeps): Router {
  const router = new Router({ prefix: '/api/v1/users/:user_id/api-keys' });

  /**
   * The caller (401 without one) and the user the path names, when the caller may act for it and it
   * exists (else 404, so that ids cannot be probed).
   */
  async function authorise<T extends { user_id: string }>(
    ctx: Context,
    params: z.ZodType<T>,
  ): Promise<{ caller: Caller; path: T }> {
    const caller = requireCaller(ctx.state);
    const path = parseInput(params, ctx.params, 'path');
    if (!mayActFor(caller, path.user_id) || !(await deps.users.findById(path.user_id))) {
      throw errors.notFound({ what: 'user' });
    }
    return { caller, path };
  }

  router.get('/', async (ctx) => {
    const { path } = await authorise(ctx, userIdParams);
    ctx.body = { data: (await deps.apiKeys.list(path.user_id)).map(apiKeyJson) };
  });

  router.post('/', async (ctx) => {
    const { caller, path } = await authorise(ctx, userIdParams);
    const { user_id } = path;
    const key = idempotencyKey(ctx);
    const body = parseInput(createApiKeyBody, await readOptionalJsonBody(ctx, deps.bodySizeMaxBytes));
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, body) };
    const { response, replayed } = await deps.gate.run(attempt, async () => {
      ctx.state.writeSent = true;
      const apiKey = newApiKey();
      const added = await deps.apiKeys.addAnswered(
        { id: uuidv7(), user_id, hash: apiKey.hash, prefix: apiKey.prefix, label: body.label ?? null },
        API_KEYS_ACTIVE_MAX,
        // The key is shown once: the stored replay carries the key's record without it.
        (row) => ({
          ...attempt,
          user_id,
          answer: { status_code: 201, body: JSON.stringify({ ...apiKeyJson(row), api_key: null }) },
        }),
      );
      if (added.kind === 'no_user') throw errors.notFound({ what: 'user' });
      if (added.kind === 'too_many') throw errors.tooManyApiKeys({ active_max: added.active_max });
      if (added.kind === 'key_in_use') throw errors.idempotencyKeyInUse();
      const shown = JSON.stringify({ ...apiKeyJson(added.key), api_key: apiKey.key });
      return { response: { status: 201, body: shown }, replayed: false };
    });
    sendStored(ctx, response, replayed);
  });

  router.post('/:key_id/revoke', async (ctx) => {
    const { caller, path } = await authorise(ctx, apiKeyParams);
    const { user_id, key_id } = path;
    const key = idempotencyKey(ctx);
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, {}) };
    const { response, replayed } = await deps.gate.run(attempt, async () => {
      ctx.state.writeSent = true;
      let body = '';
      const revoked = await deps.apiKeys.revokeAnswered(user_id, key_id, (row) => {
        body = JSON.stringify(apiKeyJson(row));
        return { ...attempt, user_id, answer: { status_code: 200, body } };
      });
      if (revoked.kind === 'no_key') throw errors.notFound({ what: 'API key' });
      if (revoked.kind === 'key_in_use') throw errors.idempotencyKeyInUse();
      deps.keyCache.forget(revoked.hash);
      return { response: { status: 200, body }, replayed: false };
    });
    sendStored(ctx, response, replayed);
  });

  return router;
}
