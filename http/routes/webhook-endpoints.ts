import Router from '@koa/router';
import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { v7 as uuidv7 } from 'uuid';
import { webhookEvent } from '../../engine/merchant-webhooks.ts';
import { checkWebhookUrl, WebhookAddressRefused, type AddressPolicy } from '../../engine/webhook-address.ts';
import type { IdempotencyRecord } from '../../persistence/idempotency.ts';
import type { DeliveryRow, EndpointChange, EndpointRow, WebhookStore } from '../../persistence/webhooks.ts';
import { mayActFor, requireCaller, type Caller } from '../auth.ts';
import { readJsonBody } from '../body.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import { errors } from '../errors.ts';
import { fingerprint, idempotencyKey, sendStored, type Attempt, type IdempotencyGate } from '../idempotency.ts';
import {
  createWebhookEndpointBody,
  PAGE_LIMIT_DEFAULT,
  webhookDeliveryListQuery,
  webhookEndpointListQuery,
  webhookEndpointParams,
} from '../schemas.ts';
import { webhookData } from '../transaction-json.ts';
import { parseInput } from '../validation.ts';

/** How long a rotated-out secret keeps signing beside the new one (Standard Webhooks sends both signatures). */
export const SECRET_OVERLAP_MS = 24 * 60 * 60_000;

export interface WebhookEndpointRoutesDeps {
  webhooks: WebhookStore;
  gate: IdempotencyGate;
  policy: AddressPolicy;
  bodySizeMaxBytes: number;
}

/** An endpoint as the API shows it: never a secret (those appear once, in the answer that made them). */
export function endpointJson(row: EndpointRow): Record<string, unknown> {
  return {
    id: row.id,
    user_id: row.user_id,
    url: row.url,
    description: row.description,
    event_types: row.event_types,
    enabled: row.enabled,
    disabled_reason: row.disabled_reason,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** A delivery and its attempts, as the log shows it. */
export function deliveryJson(row: DeliveryRow): Record<string, unknown> {
  return {
    id: row.id,
    endpoint_id: row.endpoint_id,
    user_id: row.user_id,
    event_id: row.event_id,
    event_type: row.event_type,
    transaction_id: row.transaction_id,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
    created_at: row.created_at.toISOString(),
    completed_at: row.completed_at?.toISOString() ?? null,
  };
}

/** A signing secret: 24 random bytes, as Standard Webhooks writes them. */
function newSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/** A keyset page's envelope. */
function pageOf<T extends { created_at: Date; id: string }>(rows: T[], limit: number, json: (row: T) => unknown) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  const has_more = rows.length > limit;
  return { data: items.map(json), next_cursor: has_more && last ? encodeCursor(last) : null, has_more };
}

/**
 * Merchant webhooks for the user and the admin: endpoints (register, list, read, delete, rotate the
 * secret, enable again) and the delivery log (list, redeliver). Another user's are 404.
 */
export function webhookEndpointRoutes(deps: WebhookEndpointRoutesDeps): Router {
  const router = new Router({ prefix: '/api/v1' });

  /** The endpoint the path names, when the caller may see it (else 404, so that ids cannot be probed). */
  async function ownEndpoint(ctx: Context): Promise<{ caller: Caller; endpoint: EndpointRow }> {
    const caller = requireCaller(ctx.state);
    const { id } = parseInput(webhookEndpointParams, ctx.params, 'path');
    const endpoint = await deps.webhooks.find(id);
    if (!endpoint || !mayActFor(caller, endpoint.user_id)) throw errors.notFound({ what: 'webhook endpoint' });
    return { caller, endpoint };
  }

  /** Whose endpoint a new one is: the caller's own, or (the admin) the user the body names. */
  function ownerOf(caller: Caller, named: string | undefined): string {
    if (caller.kind === 'user') {
      if (named !== undefined && named !== caller.id) throw errors.notFound({ what: 'user' });
      return caller.id;
    }
    if (named === undefined) {
      const details = [{ field: 'user_id', message: 'the admin must name the user to act for' }];
      throw errors.validationError().with({ details });
    }
    return named;
  }

  /**
   * Runs a keyed POST on an endpoint: the change and its idempotency record in one commit. `shown` is
   * what this answer adds once (a new secret); its replay carries `null` in its place.
   */
  async function changeEndpoint(
    ctx: Context,
    attempt: Attempt,
    status: number,
    change: (answer: (row: EndpointRow) => IdempotencyRecord) => Promise<EndpointChange>,
    shown: Record<string, unknown> = {},
  ): Promise<void> {
    const hidden = Object.fromEntries(Object.keys(shown).map((name) => [name, null]));
    const { response, replayed } = await deps.gate.run(attempt, async () => {
      ctx.state.writeSent = true;
      const changed = await change((row) => ({
        ...attempt,
        user_id: row.user_id,
        answer: { status_code: status, body: JSON.stringify({ ...endpointJson(row), ...hidden }) },
      }));
      if (changed.kind === 'not_found') throw errors.notFound({ what: 'webhook endpoint' });
      if (changed.kind === 'key_in_use') throw errors.idempotencyKeyInUse();
      return {
        response: { status, body: JSON.stringify({ ...endpointJson(changed.endpoint), ...shown }) },
        replayed: false,
      };
    });
    sendStored(ctx, response, replayed);
  }

  router.post('/webhook-endpoints', async (ctx) => {
    const caller = requireCaller(ctx.state);
    const key = idempotencyKey(ctx);
    const body = parseInput(createWebhookEndpointBody, await readJsonBody(ctx, deps.bodySizeMaxBytes));
    const user_id = ownerOf(caller, body.user_id);
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, body) };
    const secret = newSecret();
    await changeEndpoint(
      ctx,
      attempt,
      201,
      async (answer) => {
        await refuseUnsafeUrl(body.url, deps.policy);
        const endpoint = {
          id: uuidv7(),
          user_id,
          url: body.url,
          description: body.description ?? null,
          event_types: body.event_types,
          secret,
        };
        const created = await deps.webhooks.create(endpoint, answer);
        if (created.kind === 'not_found') throw errors.notFound({ what: 'user' });
        return created;
      },
      { secret },
    );
  });

  router.get('/webhook-endpoints', async (ctx) => {
    const caller = requireCaller(ctx.state);
    const query = parseInput(webhookEndpointListQuery, ctx.query, 'query');
    if (caller.kind === 'user' && query.user_id !== undefined && query.user_id !== caller.id) {
      throw errors.notFound({ what: 'user' });
    }
    const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
    const owner = caller.kind === 'user' ? caller.id : query.user_id;
    const rows = await deps.webhooks.page(owner, limit + 1, query.cursor ? decodeCursor(query.cursor) : undefined);
    ctx.body = pageOf(rows, limit, endpointJson);
  });

  router.get('/webhook-endpoints/:id', async (ctx) => {
    ctx.body = endpointJson((await ownEndpoint(ctx)).endpoint);
  });

  router.delete('/webhook-endpoints/:id', async (ctx) => {
    const { endpoint } = await ownEndpoint(ctx);
    if (!(await deps.webhooks.remove(endpoint.id))) throw errors.notFound({ what: 'webhook endpoint' });
    ctx.status = 204;
  });

  router.post('/webhook-endpoints/:id/rotate-secret', async (ctx) => {
    const { caller, endpoint } = await ownEndpoint(ctx);
    const key = idempotencyKey(ctx);
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, {}) };
    const secret = newSecret();
    const previous_until = new Date(Date.now() + SECRET_OVERLAP_MS);
    await changeEndpoint(
      ctx,
      attempt,
      200,
      (answer) => deps.webhooks.rotate(endpoint.id, secret, previous_until, answer),
      { secret, previous_secret_expires_at: previous_until.toISOString() },
    );
  });

  router.post('/webhook-endpoints/:id/enable', async (ctx) => {
    const { caller, endpoint } = await ownEndpoint(ctx);
    const key = idempotencyKey(ctx);
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, {}) };
    await changeEndpoint(ctx, attempt, 200, (answer) => deps.webhooks.enable(endpoint.id, answer));
  });

  router.get('/webhook-deliveries', async (ctx) => {
    const caller = requireCaller(ctx.state);
    const query = parseInput(webhookDeliveryListQuery, ctx.query, 'query');
    if (caller.kind === 'user' && query.user_id !== undefined && query.user_id !== caller.id) {
      throw errors.notFound({ what: 'user' });
    }
    const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
    const { cursor, endpoint_id, event_type, status } = query;
    const owner = caller.kind === 'user' ? caller.id : query.user_id;
    const rows = await deps.webhooks.deliveries(
      { endpoint_id, event_type, status, user_id: owner },
      limit + 1,
      cursor ? decodeCursor(cursor) : undefined,
    );
    ctx.body = pageOf(rows, limit, deliveryJson);
  });

  router.get('/webhook-deliveries/:id', async (ctx) => {
    const caller = requireCaller(ctx.state);
    const { id } = parseInput(webhookEndpointParams, ctx.params, 'path');
    const delivery = await deps.webhooks.findDeliveryWithData(id);
    if (!delivery || !mayActFor(caller, delivery.user_id)) throw errors.notFound({ what: 'webhook delivery' });
    ctx.body = { ...deliveryJson(delivery), event: webhookEvent(delivery, webhookData(delivery.data)) };
  });

  router.post('/webhook-deliveries/:id/redeliver', async (ctx) => {
    const caller = requireCaller(ctx.state);
    const { id } = parseInput(webhookEndpointParams, ctx.params, 'path');
    const delivery = await deps.webhooks.findDelivery(id);
    if (!delivery || !mayActFor(caller, delivery.user_id)) throw errors.notFound({ what: 'webhook delivery' });
    const key = idempotencyKey(ctx);
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, {}) };
    const { response, replayed } = await deps.gate.run(attempt, async () => {
      ctx.state.writeSent = true;
      let body = '';
      const again = await deps.webhooks.redeliver(id, (row) => {
        body = JSON.stringify(deliveryJson(row));
        return { ...attempt, user_id: row.user_id, answer: { status_code: 202, body } };
      });
      if (again.kind === 'not_found') throw errors.notFound({ what: 'webhook delivery' });
      if (again.kind === 'key_in_use') throw errors.idempotencyKeyInUse();
      return { response: { status: 202, body }, replayed: false };
    });
    sendStored(ctx, response, replayed);
  });

  return router;
}

/** 400 naming the `url` field when the URL may not receive webhooks (scheme, credentials, addresses). */
async function refuseUnsafeUrl(url: string, policy: AddressPolicy): Promise<void> {
  try {
    await checkWebhookUrl(url, policy);
  } catch (error) {
    if (!(error instanceof WebhookAddressRefused)) throw error;
    throw errors.validationError().with({ details: [{ field: 'url', message: error.message }] });
  }
}
