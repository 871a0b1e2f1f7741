import { Map as PersistentMap } from 'immutable';
import { BALANCE_MAX } from './money.ts';
import { reject, type Rejection } from './rejections.ts';

// The pure core of one user's account: no I/O, no clock, no actor. `decide` turns a command into
// events or a rejection; `apply` folds an event into the state. Replaying the journal is `apply` alone.

// The enums are declared once, as values: their types, and the zod enums of the stored form and of the
// API, derive from these arrays.
export const TRANSACTION_TYPES = ['deposit', 'withdrawal'] as const;
export type TransactionType = (typeof TRANSACTION_TYPES)[number];
export const TRANSACTION_STATUSES = ['pending', 'processing', 'succeeded', 'failed'] as const;
export type TransactionStatus = (typeof TRANSACTION_STATUSES)[number];
// Recovery is not a cause: replaying the journal only applies events, and handing a recovered account's
// open transactions back to payment workers changes nothing until a worker's own event (which names its
// own cause), so nothing is ever recorded for it.
export const CAUSES = ['api', 'bank_response', 'bank_callback', 'poll', 'retry', 'admin'] as const;
export type Cause = (typeof CAUSES)[number];
export type Failure = { code: string; message: string };

/** Why a transaction failed when the bank said no more than that. */
export const BANK_DECLINED: Failure = { code: 'bank_declined', message: 'The bank declined the transfer.' };

/**
 * A transaction: the one declaration of its fields. The stored row (persistence/transaction-row.ts) and
 * the API's JSON (http/transaction-json.ts) derive from it, and the schemas that read or document those
 * forms are checked against it when compiling.
 */
export interface Transaction {
  id: string;
  user_id: string;
  type: TransactionType;
  amount: bigint;
  currency: string;
  status: TransactionStatus;
  description: string | null;
  metadata: Record<string, string> | null;
  failure: Failure | null;
  bank_reference: string | null;
  attempts: number;
  request_id: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

export interface Balance {
  available: bigint;
  held: bigint;
}

/**
 * The open transactions by id: a persistent map (a hash array mapped trie), so that `apply` makes the
 * next state in O(log₃₂ n) and shares the rest with the state before — an account with thousands of
 * open transactions costs no more per event than one with none, and a state stays a value (a batch
 * decided ahead of its commit is simply dropped when the commit fails).
 */
export type OpenTransactions = PersistentMap<string, Transaction>;

/** Open transactions from a list (snapshots, tests). */
export function openTransactions(transactions: Iterable<Transaction> = []): OpenTransactions {
  return PersistentMap([...transactions].map((transaction) => [transaction.id, transaction] as const));
}

export interface AccountState {
  user_id: string;
  /** The sequence number of the last journaled event. */
  seq: number;
  balances: Readonly<Record<string, Balance>>;
  /** Transactions still pending or processing, by id. */
  open: OpenTransactions;
  /**
   * Per currency, the sum of the open deposits' amounts (currencies without one are absent): what the
   * balance may still grow by, kept up to date by `apply` so that a deposit checks the balance cap
   * without going through `open`.
   */
  incoming: Readonly<Record<string, bigint>>;
}

interface Stamp {
  at: string;
  cause: Cause;
  request_id: string | null;
}

export type Command =
  | {
      type: 'create';
      transaction: Pick<Transaction, 'id' | 'type' | 'amount' | 'currency' | 'description' | 'metadata'>;
      at: string;
      request_id: string | null;
    }
  | ({ type: 'start_processing'; transaction_id: string; bank_reference: string; attempts: number } & Stamp)
  | ({ type: 'record_attempt'; transaction_id: string; attempts: number; error: string } & Stamp)
  | ({ type: 'request_retry'; transaction_id: string } & Stamp)
  | ({
      type: 'settle';
      transaction_id: string;
      outcome: 'succeeded' | 'failed';
      failure?: Failure;
      /** Bank calls made so far, when the settler knows (a worker that was refused). */
      attempts?: number;
      /**
       * The bank's reference, when the result carries it (a callback, a poll): a result can arrive
       * before the submit's answer was journaled, and the transaction must not end without it.
       */
      bank_reference?: string;
    } & Stamp);

export type Event =
  | { type: 'transaction_created'; transaction: Transaction }
  | ({ type: 'transaction_processing'; transaction_id: string; bank_reference: string; attempts: number } & Stamp)
  | ({ type: 'attempt_failed'; transaction_id: string; attempts: number; error: string } & Stamp)
  /** Someone (the admin, retrying a dead letter) asked for the payment to be driven again: no balance or status changes. */
  | ({ type: 'retry_requested'; transaction_id: string } & Stamp)
  | ({ type: 'transaction_succeeded'; transaction_id: string; attempts?: number; bank_reference?: string } & Stamp)
  | ({
      type: 'transaction_failed';
      transaction_id: string;
      failure: Failure;
      attempts?: number;
      bank_reference?: string;
    } & Stamp);

export type Decision = { kind: 'accepted'; events: Event[] } | Rejection | { kind: 'noop'; reason: 'not_open' };

/** What a command came to: a value the edge renders (and, under an idempotency key, renders again on a replay). */
export type Outcome = { kind: 'accepted'; transaction: Transaction } | Exclude<Decision, { kind: 'accepted' }>;

const ZERO: Balance = Object.freeze({ available: 0n, held: 0n });
// One empty map shared by every account with nothing open (an idle actor's state holds no map of its own).
const NONE_OPEN: OpenTransactions = PersistentMap();

/** The state of an account that has no events yet. */
export function emptyAccount(user_id: string): AccountState {
  return { user_id, seq: 0, balances: {}, open: NONE_OPEN, incoming: {} };
}

/** The balance in one currency (zero when the account never used it). */
export function balanceOf(state: AccountState, currency: string): Balance {
  return state.balances[currency] ?? ZERO;
}

/** Decides what a command does to the account, without changing it. */
export function decide(state: AccountState, command: Command): Decision {
  if (command.type === 'create') return decideCreate(state, command);
  const open = state.open.get(command.transaction_id);
  if (!open) return { kind: 'noop', reason: 'not_open' };
  const stamp: Stamp = { at: command.at, cause: command.cause, request_id: command.request_id };
  switch (command.type) {
    case 'start_processing':
      if (open.status !== 'pending') return { kind: 'noop', reason: 'not_open' };
      return accepted({
        type: 'transaction_processing',
        transaction_id: open.id,
        bank_reference: command.bank_reference,
        attempts: command.attempts,
        ...stamp,
      });
    case 'record_attempt':
      return accepted({
        type: 'attempt_failed',
        transaction_id: open.id,
        attempts: command.attempts,
        error: command.error,
        ...stamp,
      });
    case 'request_retry':
      return accepted({ type: 'retry_requested', transaction_id: open.id, ...stamp });
    case 'settle': {
      const attempts = command.attempts !== undefined ? { attempts: command.attempts } : {};
      // Only a reference the transaction lacks is journaled (the result came before the submit's answer).
      const reference =
        command.bank_reference !== undefined && open.bank_reference === null
          ? { bank_reference: command.bank_reference }
          : {};
      return command.outcome === 'succeeded'
        ? accepted({ type: 'transaction_succeeded', transaction_id: open.id, ...attempts, ...reference, ...stamp })
        : accepted({
            type: 'transaction_failed',
            transaction_id: open.id,
            failure: command.failure ?? BANK_DECLINED,
            ...attempts,
            ...reference,
            ...stamp,
          });
    }
  }
}

function decideCreate(state: AccountState, command: Extract<Command, { type: 'create' }>): Decision {
  const { transaction } = command;
  if (state.open.has(transaction.id)) return reject('transaction_exists');
  const balance = balanceOf(state, transaction.currency);
  if (transaction.type === 'withdrawal' && transaction.amount > balance.available) return reject('insufficient_funds');
  if (transaction.type === 'deposit') {
    const incoming = state.incoming[transaction.currency] ?? 0n;
    if (balance.available + balance.held + incoming + transaction.amount > BALANCE_MAX) {
      return reject('balance_limit_exceeded');
    }
  }
  return accepted({
    type: 'transaction_created',
    transaction: {
      ...transaction,
      user_id: state.user_id,
      status: 'pending',
      failure: null,
      bank_reference: null,
      attempts: 0,
      request_id: command.request_id,
      created_at: command.at,
      updated_at: command.at,
      completed_at: null,
    },
  });
}

function accepted(...events: Event[]): Decision {
  return { kind: 'accepted', events };
}

/** The transaction as it stands after `event`, given the state before it. */
export function transactionAfter(state: AccountState, event: Event): Transaction {
  if (event.type === 'transaction_created') return event.transaction;
  const open = state.open.get(event.transaction_id);
  if (!open) throw new Error(`event ${event.type} for transaction ${event.transaction_id}, which is not open`);
  switch (event.type) {
    case 'transaction_processing':
      return {
        ...open,
        status: 'processing',
        bank_reference: event.bank_reference,
        attempts: event.attempts,
        updated_at: event.at,
      };
    case 'attempt_failed':
      return { ...open, attempts: event.attempts, updated_at: event.at };
    case 'retry_requested':
      return { ...open, updated_at: event.at };
    case 'transaction_succeeded':
      return {
        ...open,
        status: 'succeeded',
        attempts: event.attempts ?? open.attempts,
        bank_reference: event.bank_reference ?? open.bank_reference,
        updated_at: event.at,
        completed_at: event.at,
      };
    case 'transaction_failed':
      return {
        ...open,
        status: 'failed',
        failure: event.failure,
        attempts: event.attempts ?? open.attempts,
        bank_reference: event.bank_reference ?? open.bank_reference,
        updated_at: event.at,
        completed_at: event.at,
      };
  }
}

/** An event with its transaction as the event left it: computed once, when the event is applied. */
export interface Change {
  event: Event;
  transaction: Transaction;
}

/** Folds one event into the state; throws if it would break an invariant (a bug, never an input). */
export function apply(state: AccountState, event: Event): AccountState {
  return step(state, event).state;
}

/**
 * Folds one event into the state and says what it did to its transaction, in O(log n) of the open
 * transactions; throws if it would break an invariant (a bug, never an input).
 */
export function step(state: AccountState, event: Event): { state: AccountState; change: Change } {
  const transaction = transactionAfter(state, event);
  const before = balanceOf(state, transaction.currency);
  let balance = before;
  if (event.type === 'transaction_created' && transaction.type === 'withdrawal') {
    balance = { available: before.available - transaction.amount, held: before.held + transaction.amount };
  } else if (event.type === 'transaction_succeeded') {
    balance =
      transaction.type === 'deposit'
        ? { available: before.available + transaction.amount, held: before.held }
        : { available: before.available, held: before.held - transaction.amount };
  } else if (event.type === 'transaction_failed' && transaction.type === 'withdrawal') {
    balance = { available: before.available + transaction.amount, held: before.held - transaction.amount };
  }
  if (balance.available < 0n || balance.held < 0n) {
    throw new Error(
      `invariant broken: ${event.type} leaves ${transaction.currency} at ${balance.available}/${balance.held}`,
    );
  }
  const closes = transaction.status === 'succeeded' || transaction.status === 'failed';
  const open = closes ? state.open.delete(transaction.id) : state.open.set(transaction.id, transaction);
  let incoming = state.incoming;
  if (transaction.type === 'deposit' && (event.type === 'transaction_created' || closes)) {
    const sum = (incoming[transaction.currency] ?? 0n) + (closes ? -transaction.amount : transaction.amount);
    const changed: Record<string, bigint> = { ...incoming, [transaction.currency]: sum };
    if (sum === 0n) delete changed[transaction.currency];
    incoming = changed;
  }
  const next: AccountState = {
    user_id: state.user_id,
    seq: state.seq + 1,
    balances: balance === before ? state.balances : { ...state.balances, [transaction.currency]: balance },
    open,
    incoming,
  };
  return { state: next, change: { event, transaction } };
}

/** Each event with its transaction as that event left it, folding `events` in order from `before`. */
export function changesAfter(before: AccountState, events: readonly Event[]): Change[] {
  let state = before;
  return events.map((event) => {
    const folded = step(state, event);
    state = folded.state;
    return folded.change;
  });
}

/** The `incoming` of a state from its open transactions (what `apply` keeps up to date). */
export function incomingOf(open: AccountState['open']): Record<string, bigint> {
  const incoming: Record<string, bigint> = {};
  for (const transaction of open.values()) {
    if (transaction.type !== 'deposit') continue;
    incoming[transaction.currency] = (incoming[transaction.currency] ?? 0n) + transaction.amount;
  }
  return incoming;
}
