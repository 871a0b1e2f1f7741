import Router from '@koa/router';
import type { Context } from 'koa';
import type { ActorReply } from '../../engine/account-actor.ts';
import { reconcile } from '../../engine/reconciliation.ts';
import type { Registry } from '../../engine/registry.ts';
import type { DeadLetterRow, DeadLetterStore } from '../../persistence/dead-letters.ts';
import type { ReconciliationReader } from '../../persistence/reconciliation-reader.ts';
import { requireAdmin } from '../auth.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import { errorBody, errors, refusalError } from '../errors.ts';
import type { Command, Forwarding } from '../forward.ts';
import {
  fingerprint,
  idempotencyKey,
  sendStored,
  type Attempt,
  type IdempotencyGate,
  type RenderOutcome,
} from '../idempotency.ts';
import { deadLetterListQuery, deadLetterParams, PAGE_LIMIT_DEFAULT } from '../schemas.ts';
import { parseInput } from '../validation.ts';

export interface AdminRoutesDeps {
  /** Reads the journal and the read model in one snapshot, for reconciliation. */
  reconciliation: ReconciliationReader;
  accounts: Registry;
  deadLetters: DeadLetterStore;
  gate: IdempotencyGate;
  forwarding: Forwarding;
  shardTable: () => Promise<unknown>;
}

/** An admin's retry of a dead letter, authorised where the request arrived, for the account's owner to run. */
interface RetryCommand extends Command {
  kind: 'retry_dead_letter';
  id: string;
  attempt: Attempt;
}

/** A dead letter as the API shows it. */
export function deadLetterJson(row: DeadLetterRow): Record<string, unknown> {
  return {
    id: row.id,
    transaction_id: row.transaction_id,
    user_id: row.user_id,
    reason: row.reason,
    attempts: row.attempts,
    last_error: row.last_error,
    created_at: row.created_at.toISOString(),
    retried_at: row.retried_at?.toISOString() ?? null,
  };
}

/** Admin-only operations under /api/v1/admin. */
export function adminRoutes(deps: AdminRoutesDeps): Router {
  const router = new Router({ prefix: '/api/v1/admin' });

  router.get('/dead-letters', async (ctx) => {
    requireAdmin(ctx.state);
    const query = parseInput(deadLetterListQuery, ctx.query, 'query');
    const limit = query.limit ?? PAGE_LIMIT_DEFAULT;
    const rows = await deps.deadLetters.page(limit + 1, query.cursor ? decodeCursor(query.cursor) : undefined);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    ctx.body = {
      data: page.map(deadLetterJson),
      next_cursor: rows.length > limit && last ? encodeCursor(last) : null,
      has_more: rows.length > limit,
    };
  });

  /**
   * A retry's answer, first time and on every replay: 202 with the letter as it was retried (kept with
   * the outcome as its note), or 409 when the transaction settled (a late callback) meanwhile.
   */
  const renderRetry: RenderOutcome = ({ outcome, request_id, note }) => {
    if (outcome.kind === 'accepted') {
      return { status: 202, body: JSON.stringify({ ...(note as Record<string, unknown>), status: 'retrying' }) };
    }
    return { status: 409, body: JSON.stringify(errorBody(errors.transactionNotOpen(), request_id ?? '')) };
  };

  router.post('/dead-letters/:id/retry', async (ctx) => {
    const caller = requireAdmin(ctx.state);
    const key = idempotencyKey(ctx);
    const { id } = parseInput(deadLetterParams, ctx.params, 'path');
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, {}) };
    // The account's owner retries it (its payment workers run there).
    const found = await deps.deadLetters.find(id);
    const command: RetryCommand = { kind: 'retry_dead_letter', user_id: found?.user_id ?? '', id, attempt };
    if (found && (await deps.forwarding.toOwner(ctx, command))) return;
    await retry(ctx, command);
  });

  /** The retry's work on the account's owner (or here, for a letter that does not exist). */
  async function retry(ctx: Context, { id, attempt }: RetryCommand): Promise<void> {
    const { response, replayed } = await deps.gate.run(
      attempt,
      async () => {
        ctx.state.writeSent = true;
        const letter = await deps.deadLetters.find(id);
        if (!letter) throw errors.notFound({ what: 'dead letter' });
        if (letter.retried_at) throw errors.alreadyRetried();
        const reply = await deps.accounts.ask(letter.user_id, { kind: 'read' });
        if (reply.kind !== 'state') throw refusalError(reply.kind === 'refused' ? reply.reason : 'failed');
        if (!reply.state.open.has(letter.transaction_id)) throw errors.transactionNotOpen();
        const retried = await deps.deadLetters.markRetried(id);
        if (!retried) throw errors.alreadyRetried();
        const note = deadLetterJson(retried);
        const told = await requestRetry(ctx, retried, { ...attempt, note });
        // Refused: the letter stays retried; the transaction is open and no longer dead-lettered, so
        // the open-payment sweep hands it to a worker even though the retry's event was not journaled.
        return deps.gate.answer(attempt, told, renderRetry, { request_id: ctx.state.requestId, note });
      },
      renderRetry,
    );
    sendStored(ctx, response, replayed);
  }
  deps.forwarding.handle('retry_dead_letter', retry);

  /**
   * Journals the admin's retry in the transaction's audit trail (cause `admin`, this request's id),
   * with the request's idempotency record in the same commit; that commit hands the transaction to a
   * payment worker.
   */
  function requestRetry(
    ctx: Context,
    letter: DeadLetterRow,
    idempotency: Attempt & { note: unknown },
  ): Promise<ActorReply> {
    return deps.accounts.ask(letter.user_id, {
      kind: 'command',
      command: {
        type: 'request_retry',
        transaction_id: letter.transaction_id,
        at: new Date().toISOString(),
        cause: 'admin',
        request_id: ctx.state.requestId,
      },
      idempotency,
    });
  }

  router.get('/shards', async (ctx) => {
    requireAdmin(ctx.state);
    ctx.body = await deps.shardTable();
  });

  // This instance's live actors are compared too, where they stand at the snapshot's sequence.
  router.get('/reconciliation', async (ctx) => {
    requireAdmin(ctx.state);
    const report = await reconcile(deps.reconciliation, {
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
