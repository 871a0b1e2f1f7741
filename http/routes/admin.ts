import type { ToOwner } from '../forward.ts';
import Router from '@koa/router';
import { reconcile } from '../../engine/reconciliation.ts';
import type { Registry } from '../../engine/registry.ts';
import type { Payments } from '../../engine/payments.ts';
import type { DeadLetterRow, DeadLetterStore } from '../../persistence/dead-letters.ts';
import { createReconciliationReader } from '../../persistence/reconciliation-reader.ts';
import type { Sql } from '../../persistence/sql.ts';
import { requireAdmin } from '../auth.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import { errors, refusalError } from '../errors.ts';
import { fingerprint, idempotencyKey, sendStored, type IdempotencyGate } from '../idempotency.ts';
import { deadLetterListQuery, deadLetterParams } from '../schemas.ts';
import { parseInput } from '../validation.ts';

export interface AdminRoutesDeps {
  sql: Sql;
  accounts: Registry;
  payments: Payments;
  deadLetters: DeadLetterStore;
  gate: IdempotencyGate;
  toOwner: ToOwner;
  shardTable: () => Promise<unknown>;
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
    const query = parseInput(deadLetterListQuery, ctx.query);
    const limit = query.limit ?? 20;
    const rows = await deps.deadLetters.page(limit + 1, query.cursor ? decodeCursor(query.cursor) : undefined);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    ctx.body = {
      data: page.map(deadLetterJson),
      next_cursor: rows.length > limit && last ? encodeCursor(last) : null,
      has_more: rows.length > limit,
    };
  });

  router.post('/dead-letters/:id/retry', async (ctx) => {
    const caller = requireAdmin(ctx.state);
    const key = idempotencyKey(ctx);
    const { id } = parseInput(deadLetterParams, ctx.params);
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', ctx.path, {}) };
    // The account's owner retries it (its payment workers run there).
    const found = await deps.deadLetters.find(id);
    if (found && (await deps.toOwner(ctx, found.user_id))) return;
    const { response, replayed } = await deps.gate.run(attempt, async () => {
      ctx.state.writeSent = true;
      const letter = await deps.deadLetters.find(id);
      if (!letter) throw errors.notFound({ what: 'dead letter' });
      if (letter.retried_at) throw errors.alreadyRetried();
      const reply = await deps.accounts.ask(letter.user_id, { kind: 'read' });
      if (reply.kind !== 'state') throw refusalError(reply.kind === 'refused' ? reply.reason : 'failed');
      const transaction = reply.state.open[letter.transaction_id];
      if (!transaction) throw errors.transactionNotOpen();
      const retried = await deps.deadLetters.markRetried(id);
      if (!retried) throw errors.alreadyRetried();
      deps.payments.start(transaction);
      const body = JSON.stringify({ ...deadLetterJson(retried), status: 'retrying' });
      await deps.gate.record(attempt, { status: 202, body }, letter.user_id);
      return { status: 202, body };
    });
    sendStored(ctx, response, replayed);
  });

  router.get('/shards', async (ctx) => {
    requireAdmin(ctx.state);
    ctx.body = await deps.shardTable();
  });

  // This instance's live actors are compared too, where they stand at the snapshot's sequence.
  router.get('/reconciliation', async (ctx) => {
    requireAdmin(ctx.state);
    const report = await reconcile(createReconciliationReader(deps.sql), {
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
