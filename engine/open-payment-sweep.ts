import type { Logger } from '../logger.ts';
import type { OpenTransactionRef, OpenTransactionsQuery } from '../persistence/read-model.ts';
import type { AccountState } from './account.ts';
import type { ActorReply, ActorRequest } from './account-actor.ts';
import { shardOf } from './shards.ts';

export interface OpenPaymentSweepOptions {
  /** Open transactions that are not dead-lettered, oldest first, a page at a time (the read model). */
  openTransactions: (query: OpenTransactionsQuery) => Promise<OpenTransactionRef[]>;
  accounts: { ask(user_id: string, request: ActorRequest): Promise<ActorReply> };
  /** The payment workers: whether one drives a transaction, and handing an account's open ones to workers. */
  payments: { has(transaction_id: string): boolean; resume(state: AccountState): void };
  ownership: { readonly shards: number; owned(): number[] };
  /** How often the sweep runs, and how long a transaction must have been unchanged to be swept. */
  interval_ms: number;
  /** Transactions read per query. */
  page_size_max: number;
  /** Accounts asked at once. */
  asks_in_flight_max: number;
  log: Logger;
}

/**
 * Liveness for payments: every `interval_ms`, the open transactions of the shards this instance owns
 * that no worker here drives and that have not changed for `interval_ms` are handed to payment
 * workers, through their account's actor (which recovers it if need be). So a transaction whose
 * worker gave up (its account refusing it) or that a restart or takeover missed is driven again within
 * two intervals, whether or not anyone touches its account. Dead-lettered ones wait for an operator.
 */
export function startOpenPaymentSweep(options: OpenPaymentSweepOptions) {
  const { log } = options;
  const running = new Set<Promise<unknown>>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  /** Resumes the open payments of `shards` unchanged for `idle_ms`; returns how many accounts were asked. */
  async function sweep(shards: ReadonlySet<number>, idle_ms: number): Promise<number> {
    const updated_before = new Date(Date.now() - idle_ms);
    let after: OpenTransactionsQuery['after'];
    let asked = 0;
    // Bounded by the open transactions: the keyset moves forward on every page.
    while (!stopped) {
      const rows = await options.openTransactions({ updated_before, after, limit: options.page_size_max });
      const orphans = rows.filter(
        (row) => shards.has(shardOf(row.user_id, options.ownership.shards)) && !options.payments.has(row.id),
      );
      const users = [...new Set(orphans.map((row) => row.user_id))];
      await resumeAccounts(users);
      asked += users.length;
      const last = rows.at(-1);
      if (!last || rows.length < options.page_size_max) break;
      after = { created_at: last.created_at, id: last.id };
    }
    return asked;
  }

  async function resumeAccounts(users: string[]): Promise<void> {
    for (let i = 0; i < users.length && !stopped; i += options.asks_in_flight_max) {
      await Promise.all(users.slice(i, i + options.asks_in_flight_max).map(resumeAccount));
    }
  }

  async function resumeAccount(user_id: string): Promise<void> {
    const reply = await options.accounts.ask(user_id, { kind: 'read' });
    // A refused account (busy, moving, storage down) is asked again at the next sweep.
    if (reply.kind === 'state') options.payments.resume(reply.state);
    else log.debug({ user_id, reply }, 'account refused the sweep; next sweep retries');
  }

  /** Runs a sweep, logging rather than throwing, and remembers it until it ends (for `stop`). */
  function track(shards: ReadonlySet<number>, idle_ms: number, why: string): Promise<void> {
    const run = sweep(shards, idle_ms).then(
      (asked) => {
        if (asked > 0) log.info({ accounts: asked, why }, 'resumed open payments without a worker');
      },
      (error: unknown) => log.warn({ err: error, why }, 'open-payment sweep failed; the next one retries'),
    );
    running.add(run);
    return run.finally(() => running.delete(run));
  }

  function schedule(): void {
    timer = setTimeout(() => {
      void track(new Set(options.ownership.owned()), options.interval_ms, 'periodic').finally(() => {
        if (!stopped) schedule();
      });
    }, options.interval_ms);
    timer.unref();
  }
  schedule();

  return {
    /** Resumes at once every open payment of shards just taken (at start, or from another instance). */
    taken(shards: readonly number[]): Promise<void> {
      if (stopped) return Promise.resolve();
      return track(new Set(shards), 0, 'shards taken');
    },

    /** Stops the timer and waits for the sweeps in flight, whose remaining pages are skipped. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await Promise.all(running);
    },
  };
}

export type OpenPaymentSweep = ReturnType<typeof startOpenPaymentSweep>;
