import type { ToOwner } from '../forward.ts';
import Router from '@koa/router';
import { BANK_DECLINED } from '../../engine/account.ts';
import type { Registry } from '../../engine/registry.ts';
import type { Inbox } from '../../persistence/inbox.ts';
import type { ReadModel } from '../../persistence/read-model.ts';
import type { Logger } from '../../logger.ts';
import { readJsonBody } from '../body.ts';
import { errors, refusalError } from '../errors.ts';
import { bankCallbackBody, bankCallbackHeaders } from '../schemas.ts';
import { parseInput } from '../validation.ts';
import { verifyWebhook } from '../webhook-signature.ts';

export interface WebhookRoutesDeps {
  secrets: readonly string[];
  inbox: Inbox;
  readModel: ReadModel;
  accounts: Registry;
  bodySizeMaxBytes: number;
  toOwner: ToOwner;
  log: Logger;
}

/**
 * `POST /webhooks/bank-callback`: verify the signature on the raw body, validate the body and the
 * webhook-id, hand the result to the account's actor, then record the webhook-id. The result is applied
 * before the id is recorded, so a crash in between means a redelivery that the actor turns into a
 * no-op, never a lost result; so whatever the inbox could not record is refused before anything applies.
 */
export function webhookRoutes(deps: WebhookRoutesDeps): Router {
  const router = new Router();
  router.post('/webhooks/bank-callback', async (ctx) => {
    const parsed = await readJsonBody(ctx, deps.bodySizeMaxBytes);
    const verified = verifyWebhook({
      headers: ctx.req.headers,
      rawBody: ctx.state.rawBody ?? Buffer.alloc(0),
      secrets: deps.secrets,
      now_s: Math.floor(Date.now() / 1000),
    });
    if (!verified.ok) throw errors.invalidSignature({ reason: verified.reason });
    const callback = parseInput(bankCallbackBody, parsed);
    // The inbox must be able to record the id once the result is applied: check it before applying.
    parseInput(bankCallbackHeaders, { 'webhook-id': verified.id });
    if (await deps.inbox.seen(verified.id)) {
      ctx.body = { status: 'duplicate' };
      return;
    }
    const { reference, status, failure_code, failure_message } = callback.data;
    const transaction = await deps.readModel.find(reference);
    if (!transaction || status === 'processing') {
      deps.log.warn({ webhook_id: verified.id, transaction_id: reference }, 'callback for an unknown transaction');
      await deps.inbox.record(verified.id, null, callback);
      ctx.body = { status: 'ignored' };
      return;
    }
    ctx.state.transactionId = reference;
    if (await deps.toOwner(ctx, transaction.user_id)) return;
    const reply = await deps.accounts.ask(transaction.user_id, {
      kind: 'command',
      command: {
        type: 'settle',
        transaction_id: reference,
        outcome: status,
        ...(status === 'failed'
          ? {
              failure: {
                code: failure_code ?? BANK_DECLINED.code,
                message: failure_message ?? BANK_DECLINED.message,
              },
            }
          : {}),
        at: new Date().toISOString(),
        cause: 'bank_callback',
        request_id: ctx.state.requestId,
      },
    });
    if (reply.kind !== 'done') throw refusalError(reply.kind === 'refused' ? reply.reason : 'failed');
    await deps.inbox.record(verified.id, reference, callback);
    deps.log.info(
      { webhook_id: verified.id, transaction_id: reference, user_id: transaction.user_id, outcome: status },
      reply.outcome.kind === 'noop' ? 'callback for a finished transaction: no change' : 'callback applied',
    );
    ctx.body = { status: reply.outcome.kind === 'noop' ? 'already_final' : 'applied' };
  });
  return router;
}
