import Router from '@koa/router';
import type { Context } from 'koa';
import type { z } from 'zod';
import { BANK_DECLINED } from '../../engine/account.ts';
import type { Registry } from '../../engine/registry.ts';
import type { Inbox } from '../../persistence/inbox.ts';
import type { ReadModel } from '../../persistence/read-model.ts';
import type { Logger } from '../../logger.ts';
import { readJsonBody } from '../body.ts';
import { errors, refusalError } from '../errors.ts';
import type { Command, Forwarding } from '../forward.ts';
import { bankCallbackBody, bankCallbackHeaders } from '../schemas.ts';
import { parseInput } from '../validation.ts';
import { verifyWebhook } from '../webhook-signature.ts';

export interface WebhookRoutesDeps {
  secrets: readonly string[];
  inbox: Inbox;
  readModel: ReadModel;
  /** The account of a transaction this instance's payment worker drives, if one does. */
  accountOf: (transaction_id: string) => string | undefined;
  accounts: Registry;
  bodySizeMaxBytes: number;
  forwarding: Forwarding;
  log: Logger;
}

/** A bank callback, verified and validated where it arrived, for the owner of its account to apply. */
interface SettleCommand extends Command {
  kind: 'settle_callback';
  /** The callback as the inbox records it (its webhook-id, transaction and validated body). */
  receipt: { webhook_id: string; reference: string; payload: z.infer<typeof bankCallbackBody> };
}

/**
 * `POST /webhooks/bank-callback`: verify the signature on the raw body, validate the body and the
 * webhook-id, and hand the result to the account's actor with the callback as its receipt: the
 * settlement and the webhook-id are committed together, so a redelivery is a no-op and a crash loses
 * neither. The account comes from this instance's payment worker when one drives the transaction (no
 * query on the hot path), else from the read model. A callback that changes nothing (the transaction
 * already final, or unknown) is recorded on its own, and recording says whether it was a redelivery.
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
    // The inbox must be able to record the id with the result: check it before applying.
    parseInput(bankCallbackHeaders, { 'webhook-id': verified.id }, 'headers');
    const { reference, status } = callback.data;
    const user_id =
      status === 'processing'
        ? undefined
        : (deps.accountOf(reference) ?? (await deps.readModel.find(reference))?.user_id);
    if (status === 'processing' || !user_id) {
      const fresh = await deps.inbox.record({ webhook_id: verified.id, reference: null, payload: callback });
      if (fresh)
        deps.log.warn({ webhook_id: verified.id, transaction_id: reference }, 'callback for an unknown transaction');
      ctx.body = { status: fresh ? 'ignored' : 'duplicate' };
      return;
    }
    ctx.state.transactionId = reference;
    const command: SettleCommand = {
      kind: 'settle_callback',
      user_id,
      receipt: { webhook_id: verified.id, reference, payload: callback },
    };
    if (await deps.forwarding.toOwner(ctx, command)) return;
    await settle(ctx, command);
  });

  /** The callback's work on the account's owner: the actor settles and records it, or it changes nothing. */
  async function settle(ctx: Context, { user_id, receipt }: SettleCommand): Promise<void> {
    const { reference, payload } = receipt;
    const { status, failure_code, failure_message, bank_reference } = payload.data;
    ctx.state.transactionId = reference;
    const reply = await deps.accounts.ask(user_id, {
      kind: 'command',
      command: {
        type: 'settle',
        transaction_id: reference,
        outcome: status as 'succeeded' | 'failed',
        bank_reference,
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
      receipt,
    });
    if (reply.kind !== 'done') throw refusalError(reply.kind === 'refused' ? reply.reason : 'failed');
    const webhook_id = receipt.webhook_id;
    if (reply.outcome.kind !== 'noop') {
      deps.log.info({ webhook_id, transaction_id: reference, user_id, outcome: status }, 'callback applied');
      ctx.body = { status: 'applied' };
      return;
    }
    // Already final: a redelivery of the callback that settled it, or another callback for it.
    const fresh = await deps.inbox.record(receipt);
    deps.log.info(
      { webhook_id, transaction_id: reference, user_id, outcome: status },
      fresh ? 'callback for a finished transaction: no change' : 'callback redelivered: no change',
    );
    ctx.body = { status: fresh ? 'already_final' : 'duplicate' };
  }
  deps.forwarding.handle('settle_callback', settle);

  return router;
}
