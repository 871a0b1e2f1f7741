import Router from '@koa/router';
import type { Context } from 'koa';
import type { Registry } from '../../engine/registry.ts';
import { balanceOf } from '../../engine/account.ts';
import { toWire } from '../../engine/money.ts';
import type { ReadModel } from '../../persistence/read-model.ts';
import type { UserStore } from '../../persistence/users.ts';
import { mayActFor, requireCaller, type Caller } from '../auth.ts';
import { decodeCursor } from '../cursor.ts';
import { errors, refusalError } from '../errors.ts';
import type { Command, Forwarding } from '../forward.ts';
import { historyQuery, PAGE_LIMIT_DEFAULT, userIdParams } from '../schemas.ts';
import { parseInput } from '../validation.ts';
import { sendPage } from './pages.ts';

export interface AccountRoutesDeps {
  accounts: Registry;
  readModel: ReadModel;
  users: UserStore;
  currencies: readonly string[];
  forwarding: Forwarding;
}

/** A balance read, authorised where the request arrived, for the account's owner to answer. */
export interface BalanceCommand extends Command {
  kind: 'read_balance';
}

/** The contract's balance: every configured currency (and any other the account holds), available and held. */
export interface BalanceJson {
  user_id: string;
  balances: { currency: string; available: number; held: number }[];
}

/**
 * The balance from the live actor, on the account's owner (REST and GraphQL): 503 with the actor's
 * refusal when it cannot answer.
 */
export async function readBalance(
  deps: Pick<AccountRoutesDeps, 'accounts' | 'currencies'>,
  user_id: string,
): Promise<BalanceJson> {
  const reply = await deps.accounts.ask(user_id, { kind: 'read' });
  if (reply.kind !== 'state') throw refusalError(reply.kind === 'refused' ? reply.reason : 'failed');
  const currencies = [...new Set([...deps.currencies, ...Object.keys(reply.state.balances)])];
  return {
    user_id,
    balances: currencies.map((currency) => {
      const balance = balanceOf(reply.state, currency);
      return { currency, available: toWire(balance.available), held: toWire(balance.held) };
    }),
  };
}

/**
 * Refuses, as 404, an account the caller may not see (another user's) or that does not exist (for
 * the admin; a user's own exists, as its key does), so that ids cannot be probed.
 */
export async function mustSeeAccount(caller: Caller, user_id: string, users: UserStore): Promise<void> {
  if (!mayActFor(caller, user_id)) throw errors.notFound({ what: 'user' });
  if (caller.kind === 'admin' && !(await users.findById(user_id))) throw errors.notFound({ what: 'user' });
}

/** GET /users/{user_id}/balance (from the live actor) and /users/{user_id}/transactions (read model). */
export function accountRoutes(deps: AccountRoutesDeps): Router {
  const router = new Router({ prefix: '/api/v1/users/:user_id' });

  async function visibleUser(caller: Caller, params: unknown): Promise<string> {
    const { user_id } = parseInput(userIdParams, params, 'path');
    await mustSeeAccount(caller, user_id, deps.users);
    return user_id;
  }

  router.get('/balance', async (ctx) => {
    const user_id = await visibleUser(requireCaller(ctx.state), ctx.params);
    const command: BalanceCommand = { kind: 'read_balance', user_id };
    if (await deps.forwarding.toOwner(ctx, command)) return;
    await balance(ctx, command);
  });

  /** The balance from the live actor, on the account's owner. */
  async function balance(ctx: Context, { user_id }: BalanceCommand): Promise<void> {
    ctx.body = await readBalance(deps, user_id);
  }
  deps.forwarding.handle('read_balance', balance);

  router.get('/transactions', async (ctx) => {
    const user_id = await visibleUser(requireCaller(ctx.state), ctx.params);
    const query = parseInput(historyQuery, ctx.query, 'query');
    await sendPage(ctx, deps.readModel, {
      ...query,
      user_id,
      limit: query.limit ?? PAGE_LIMIT_DEFAULT,
      ...(query.cursor !== undefined ? { after: decodeCursor(query.cursor) } : {}),
    });
  });

  return router;
}
