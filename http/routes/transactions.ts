import Router from '@koa/router';
import type { Context } from 'koa';
import { v7 as uuidv7 } from 'uuid';
import type { z } from 'zod';
import { TRANSACTION_TYPES, type TransactionType } from '../../engine/account.ts';
import type { Registry } from '../../engine/registry.ts';
import type { ReadModel } from '../../persistence/read-model.ts';
import type { UserStore } from '../../persistence/users.ts';
import { mayActFor, requireCaller, type Caller } from '../auth.ts';
import { readJsonBody } from '../body.ts';
import { decodeCursor } from '../cursor.ts';
import type { Command, Forwarding } from '../forward.ts';
import { errorBody, errors, rejectionError } from '../errors.ts';
import {
  fingerprint,
  idempotencyKey,
  sendStored,
  type Answer,
  type Attempt,
  type IdempotencyGate,
  type RenderOutcome,
  type StoredResponse,
} from '../idempotency.ts';
import {
  PAGE_LIMIT_DEFAULT,
  transactionBody,
  transactionIdParams,
  transactionListQuery,
  typedListQuery,
} from '../schemas.ts';
import { eventJson, rowJson, transactionJson } from '../transaction-json.ts';
import { parseInput } from '../validation.ts';
import { sendPage, type PageRequest } from './pages.ts';

export interface TransactionRoutesDeps {
  accounts: Registry;
  readModel: ReadModel;
  users: UserStore;
  gate: IdempotencyGate;
  currencies: readonly string[];
  bodySizeMaxBytes: number;
  forwarding: Forwarding;
}

/** A create, authenticated and validated where the request arrived, for the account's owner to run. */
export interface CreateCommand extends Command {
  kind: 'create_transaction';
  type: TransactionType;
  input: Omit<TransactionBody, 'user_id'>;
  attempt: Attempt;
}

/** A create's input as the REST body carries it (GraphQL's input is checked against the same schema). */
export type TransactionBody = z.infer<ReturnType<typeof transactionBody>>;

/** Where each type is created: the REST path, which is also what a create's fingerprint names. */
export const TRANSACTION_PATHS: Record<TransactionType, string> = {
  deposit: '/api/v1/deposits',
  withdrawal: '/api/v1/withdrawals',
};

/** Resolves whose account a request acts on: the caller's own, or (admin) the named user's. */
export async function targetUser(caller: Caller, user_id: string | undefined, users: UserStore): Promise<string> {
  if (caller.kind === 'user') {
    if (user_id !== undefined && user_id !== caller.id) throw errors.notFound({ what: 'user' });
    return caller.id;
  }
  if (user_id === undefined) {
    const details = [{ field: 'user_id', message: 'the admin must name the user to act for' }];
    throw errors.validationError().with({ details });
  }
  if (!(await users.findById(user_id))) throw errors.notFound({ what: 'user' });
  return user_id;
}

/** What creating a transaction needs, whichever API asks. */
export interface CreationDeps {
  accounts: Registry;
  users: UserStore;
  gate: IdempotencyGate;
}

/**
 * Creating a deposit or a withdrawal, for the REST routes and for GraphQL alike: `command` resolves
 * whose account it is and the idempotency attempt (caller, key, fingerprint); `run`, on the account's
 * owner, passes the attempt through the idempotency gate to the actor and renders the outcome as the
 * REST answer (202 with the transaction, or the refusal's error body), first time and on every replay.
 * Both APIs go through one gate with one fingerprint per operation, so a key means the same request
 * in either and replays the same outcome.
 */
export function transactionCreation(deps: CreationDeps) {
  /** A create's answer, first time and on every replay: 202 with the transaction, or the rejection. */
  const render: RenderOutcome = ({ outcome, request_id }): StoredResponse => {
    if (outcome.kind === 'accepted') return { status: 202, body: JSON.stringify(transactionJson(outcome.transaction)) };
    if (outcome.kind === 'rejected') {
      const error = rejectionError(outcome);
      return { status: error.status, body: JSON.stringify(errorBody(error, request_id ?? '')) };
    }
    throw new Error('a new transaction cannot be a no-op');
  };

  /** The create's command: the account it acts on (404 for another user's), and its attempt at `key`. */
  async function command(
    caller: Caller,
    key: string,
    type: TransactionType,
    path: string,
    body: TransactionBody,
  ): Promise<CreateCommand> {
    const { user_id: named, ...input } = body;
    const user_id = await targetUser(caller, named, deps.users);
    const attempt = { caller: caller.id, key, fingerprint: fingerprint('POST', path, { ...input, user_id: named }) };
    return { kind: 'create_transaction', user_id, type, input, attempt };
  }

  /** The create's work on the account's owner: the idempotency gate, the actor, the answer. */
  async function run(ctx: Context, { user_id, type, input, attempt }: CreateCommand): Promise<Answer> {
    const id = uuidv7();
    return deps.gate.run(
      attempt,
      async () => {
        ctx.state.writeSent = true;
        const reply = await deps.accounts.ask(user_id, {
          kind: 'command',
          command: {
            type: 'create',
            transaction: {
              id,
              type,
              amount: BigInt(input.amount),
              currency: input.currency,
              description: input.description ?? null,
              metadata: input.metadata ?? null,
            },
            at: new Date().toISOString(),
            request_id: ctx.state.requestId,
          },
          idempotency: attempt,
        });
        if (reply.kind === 'done' && reply.outcome.kind === 'accepted') ctx.state.transactionId = id;
        return deps.gate.answer(attempt, reply, render, { request_id: ctx.state.requestId });
      },
      render,
    );
  }

  return { command, run };
}

export type TransactionCreation = ReturnType<typeof transactionCreation>;

/**
 * The page a transaction list reads: every user's for the admin, unless the query names one; the
 * caller's own for a user, who naming another user gets 404. `type` narrows it to one type.
 */
export function listedPage(
  caller: Caller,
  query: z.infer<typeof transactionListQuery>,
  type: TransactionType | undefined,
): PageRequest {
  if (caller.kind === 'user' && query.user_id !== undefined && query.user_id !== caller.id) {
    throw errors.notFound({ what: 'user' });
  }
  const user_id = caller.kind === 'user' ? caller.id : query.user_id;
  return {
    ...query,
    ...(user_id !== undefined ? { user_id } : {}),
    ...(type !== undefined ? { type } : {}),
    limit: query.limit ?? PAGE_LIMIT_DEFAULT,
    ...(query.cursor !== undefined ? { after: decodeCursor(query.cursor) } : {}),
  };
}

/** POST, GET by id, and GET lists for deposits and withdrawals. */
export function transactionRoutes(deps: TransactionRoutesDeps): Router {
  const router = new Router();
  const body = transactionBody(deps.currencies);
  const creation = transactionCreation(deps);

  async function create(ctx: Context, type: TransactionType): Promise<void> {
    const caller = requireCaller(ctx.state);
    const key = idempotencyKey(ctx);
    const input = parseInput(body, await readJsonBody(ctx, deps.bodySizeMaxBytes));
    const command = await creation.command(caller, key, type, ctx.path, input);
    if (await deps.forwarding.toOwner(ctx, command)) return;
    await run(ctx, command);
  }

  /** The create on the account's owner, answered as stored. */
  async function run(ctx: Context, command: CreateCommand): Promise<void> {
    const { response, replayed } = await creation.run(ctx, command);
    sendStored(ctx, response, replayed);
  }
  deps.forwarding.handle('create_transaction', run);

  async function show(ctx: Context, type: TransactionType): Promise<void> {
    const caller = requireCaller(ctx.state);
    const { id } = parseInput(transactionIdParams, ctx.params, 'path');
    const row = await deps.readModel.find(id);
    if (!row || row.type !== type || !mayActFor(caller, row.user_id)) throw errors.notFound({ what: type });
    const events = await deps.readModel.events(row);
    ctx.body = { ...rowJson(row), events: events.map(eventJson) };
  }

  /**
   * A page of deposits or withdrawals (`type`), or of both (`GET /api/v1/transactions`, where the
   * query may name the type): whose, as `listedPage` says.
   */
  async function list(ctx: Context, type: TransactionType | undefined): Promise<void> {
    const caller = requireCaller(ctx.state);
    const query = parseInput(type ? typedListQuery : transactionListQuery, ctx.query, 'query');
    await sendPage(ctx, deps.readModel, listedPage(caller, query, type));
  }

  router.get('/api/v1/transactions', (ctx) => list(ctx, undefined));
  for (const type of TRANSACTION_TYPES) {
    router.post(TRANSACTION_PATHS[type], (ctx) => create(ctx, type));
    router.get(`${TRANSACTION_PATHS[type]}/:id`, (ctx) => show(ctx, type));
    router.get(TRANSACTION_PATHS[type], (ctx) => list(ctx, type));
  }
  return router;
}
