import { WORKERS_MAX_DEFAULT } from '../config.ts';
import type { Context } from '@opentelemetry/api';
import type { Logger } from '../logger.ts';
import { inContext } from '../tracing.ts';
import type { DeadLetterStore } from '../persistence/dead-letters.ts';
import type { AccountState, Cause, Change, Command, Transaction } from './account.ts';
import type { ActorReply, ActorRequest } from './account-actor.ts';
import type { BankClient } from './bank-client.ts';

export interface PaymentsOptions {
  bank: BankClient;
  accounts: { ask(user_id: string, request: ActorRequest): Promise<ActorReply> };
  deadLetters: DeadLetterStore;
  attempts_max: number;
  backoff_base_ms: number;
  backoff_max_ms: number;
  callback_deadline_ms: number;
  polls_max: number;
  breaker_wait_ms: number;
  /**
   * Workers in flight at most. A transaction that finds them all taken gets none: the open-payment
   * sweep hands it to a worker later (within two sweep intervals), as it does after a restart.
   */
  workers_max?: number;
  log: Logger;
  random?: () => number;
  /** Told each time a payment is submitted again: after a transient failure, or because the bank lost it. */
  onRetry?: (reason: 'transient' | 'not_found') => void;
  /** Told each time a payment gives up and is filed as a dead letter. */
  onDeadLetter?: () => void;
}

/** One payment being driven, as the dashboard and REPL show it (`attempts`: the bank calls so far). */
export interface PaymentView extends Pick<Transaction, 'user_id' | 'type' | 'currency' | 'attempts'> {
  transaction_id: Transaction['id'];
  /** Minor units, as a decimal string. */
  amount: string;
  phase: 'submitting' | 'awaiting_result' | 'backing_off' | 'breaker_open';
  polls: number;
  next_at: string | null;
  last_error: string | null;
}

interface Worker {
  transaction: Transaction;
  view: PaymentView;
  finished: Promise<void>;
  finish: () => void;
  done: boolean;
}

/** Bounds how often the worker retries a command its actor could not take (shard moving, restart). */
const ACTOR_TRIES_MAX = 30;

/** The first wait before telling a refusing actor again, doubled per try, and its cap (before jitter). */
const ACTOR_RETRY_DELAY_MS_BASE = 100;
const ACTOR_RETRY_DELAY_MS_MAX = 5000;

/**
 * Full jitter: a uniform wait between 0 and the capped exponential `base_ms × 2^(attempt − 1)`, so that
 * workers refused together (a busy account, a shard moving) do not come back together.
 */
export function fullJitterDelayMs(random: () => number, attempt: number, base_ms: number, max_ms: number): number {
  return Math.floor(random() * Math.min(max_ms, base_ms * 2 ** (attempt - 1)));
}

/**
 * The payment workers: after a transaction's creation is journaled (or an account recovers with it
 * open), a worker drives it against the bank — submit with retries (exponential backoff, full jitter),
 * wait for the callback, poll when none comes by the deadline, and after the last attempt file a dead
 * letter. A worker only ever tells the account actor what happened; the actor decides.
 */
export function createPayments(options: PaymentsOptions) {
  const workers = new Map<string, Worker>();
  const random = options.random ?? Math.random;
  const workers_max = options.workers_max ?? WORKERS_MAX_DEFAULT;
  let left_to_sweep = 0;
  let stopped = false;
  const sleepers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = { timer: setTimeout(() => wake(sleeper), ms), resolve };
      sleepers.add(sleeper);
    });
  }
  function wake(sleeper: { timer: NodeJS.Timeout; resolve: () => void }): void {
    clearTimeout(sleeper.timer);
    sleepers.delete(sleeper);
    sleeper.resolve();
  }

  function backoff(attempt: number): number {
    return fullJitterDelayMs(random, attempt, options.backoff_base_ms, options.backoff_max_ms);
  }

  async function tell(worker: Worker, command: Command): Promise<'applied' | 'not_open' | 'gave_up'> {
    for (let tries = 1; tries <= ACTOR_TRIES_MAX && !stopped; tries += 1) {
      const reply = await options.accounts.ask(worker.transaction.user_id, { kind: 'command', command });
      if (reply.kind === 'done') return reply.outcome.kind === 'noop' ? 'not_open' : 'applied';
      // Another instance owns the account now: its worker resumes the payment there.
      if (reply.kind === 'refused' && reply.reason === 'not_owned') {
        release(worker);
        return 'gave_up';
      }
      await sleep(fullJitterDelayMs(random, tries, ACTOR_RETRY_DELAY_MS_BASE, ACTOR_RETRY_DELAY_MS_MAX));
    }
    return 'gave_up';
  }

  function stamp(cause: Cause) {
    return { at: new Date().toISOString(), cause, request_id: null };
  }

  async function settle(
    worker: Worker,
    outcome: 'succeeded' | 'failed',
    cause: Cause,
    failure?: Transaction['failure'],
    bank_reference?: string,
  ) {
    await tell(worker, {
      type: 'settle',
      transaction_id: worker.transaction.id,
      outcome,
      ...(failure ? { failure } : {}),
      ...(bank_reference !== undefined ? { bank_reference } : {}),
      attempts: worker.view.attempts,
      ...stamp(cause),
    });
  }

  async function deadLetter(worker: Worker, reason: string): Promise<void> {
    const { view } = worker;
    await options.deadLetters.add({
      transaction_id: view.transaction_id,
      user_id: view.user_id,
      reason,
      attempts: view.attempts,
      last_error: view.last_error,
    });
    options.onDeadLetter?.();
    options.log.error(
      { transaction_id: view.transaction_id, reason, attempts: view.attempts },
      'payment dead-lettered',
    );
  }

  /** Submits until the bank accepts, refuses for good, or the attempts run out. */
  async function submit(worker: Worker, round_start: number): Promise<'accepted' | 'finished'> {
    const { view, transaction } = worker;
    while (!stopped && !worker.done) {
      if (view.attempts - round_start >= options.attempts_max) {
        await deadLetter(worker, `no answer from the bank after ${options.attempts_max} attempts`);
        return 'finished';
      }
      view.phase = 'submitting';
      const answer = await options.bank.submit(transaction);
      // Stopping shuts the bank client down under calls in flight: their failures are not the bank's.
      if (stopped) return 'finished';
      if (answer.kind === 'breaker_open') {
        view.phase = 'breaker_open';
        await sleep(options.breaker_wait_ms);
        continue;
      }
      view.attempts += 1;
      // The bank down, slow or refusing is an operating condition the worker handles (retry, or a failed
      // payment): a warning. The dead letter after the last attempt is the error a human acts on.
      options.log[answer.kind === 'accepted' ? 'info' : 'warn'](
        {
          transaction_id: transaction.id,
          user_id: transaction.user_id,
          attempt: view.attempts,
          outcome: answer.kind,
          ...(answer.kind === 'transient' ? { error: answer.error } : {}),
          ...(answer.kind === 'rejected' ? { code: answer.code } : {}),
        },
        'bank call',
      );
      if (answer.kind === 'accepted') {
        const told = await tell(worker, {
          type: 'start_processing',
          transaction_id: transaction.id,
          bank_reference: answer.bank_reference,
          attempts: view.attempts,
          ...stamp('bank_response'),
        });
        return told === 'applied' ? 'accepted' : 'finished';
      }
      if (answer.kind === 'rejected') {
        await settle(worker, 'failed', 'bank_response', { code: answer.code, message: answer.message });
        return 'finished';
      }
      view.last_error = answer.error;
      await tell(worker, {
        type: 'record_attempt',
        transaction_id: transaction.id,
        attempts: view.attempts,
        error: answer.error,
        ...stamp('retry'),
      });
      if (view.attempts - round_start < options.attempts_max) options.onRetry?.('transient');
      const wait_ms = backoff(view.attempts);
      view.phase = 'backing_off';
      view.next_at = new Date(Date.now() + wait_ms).toISOString();
      await sleep(wait_ms);
      view.next_at = null;
    }
    return 'finished';
  }

  /** Waits for the callback; past the deadline asks the bank, and resubmits if it lost the transfer. */
  async function awaitResult(worker: Worker): Promise<'resubmit' | 'finished'> {
    const { view, transaction } = worker;
    while (!stopped && !worker.done) {
      view.phase = 'awaiting_result';
      view.next_at = new Date(Date.now() + options.callback_deadline_ms).toISOString();
      await Promise.race([worker.finished, sleep(options.callback_deadline_ms)]);
      if (worker.done || stopped) return 'finished';
      view.polls += 1;
      if (view.polls > options.polls_max) {
        await deadLetter(worker, `no result after ${options.polls_max} status polls`);
        return 'finished';
      }
      const status = await options.bank.status(transaction.id);
      if (stopped) return 'finished';
      options.log[status.kind === 'transient' ? 'warn' : 'info'](
        {
          transaction_id: transaction.id,
          poll: view.polls,
          outcome: status.kind,
          ...(status.kind === 'transient' ? { error: status.error } : {}),
        },
        'bank status poll',
      );
      if (status.kind === 'not_found') {
        options.onRetry?.('not_found');
        return 'resubmit';
      }
      if (status.kind !== 'found' || status.status === 'processing') continue;
      await settle(worker, status.status, 'poll', status.failure ?? null, status.bank_reference);
      return 'finished';
    }
    return 'finished';
  }

  async function drive(worker: Worker, round_start: number): Promise<void> {
    let phase: 'submit' | 'await' = worker.transaction.status === 'processing' ? 'await' : 'submit';
    while (!stopped && !worker.done) {
      if (phase === 'submit' && (await submit(worker, round_start)) === 'finished') return;
      phase = (await awaitResult(worker)) === 'resubmit' ? 'submit' : 'await';
      if (phase === 'await') return;
    }
  }

  /** One log line when the workers fill up (and one when they have room again), not one per transaction. */
  function leaveToSweep(transaction: Transaction): void {
    if (left_to_sweep === 0) {
      options.log.warn(
        { workers_max, transaction_id: transaction.id },
        'payment workers full; open transactions are left to the open-payment sweep',
      );
    }
    left_to_sweep += 1;
  }

  /** Ends a worker and forgets it at once, so that the transaction can get a new worker later. */
  function release(worker: Worker): void {
    worker.finish();
    if (workers.get(worker.transaction.id) === worker) workers.delete(worker.transaction.id);
  }

  /**
   * Starts a worker for the transaction; `trace` is the context of the request that created it (or
   * asked for its retry), which its bank calls continue: tracing on, a payment without one (resumed
   * after a recovery, by the sweep) starts traces of its own rather than joining whatever ran before.
   */
  function start(transaction: Transaction, round_start = transaction.attempts, trace?: Context): void {
    if (stopped || workers.has(transaction.id)) return;
    if (workers.size >= workers_max) {
      leaveToSweep(transaction);
      return;
    }
    if (left_to_sweep > 0) {
      options.log.info({ left_to_sweep }, 'payment workers below their bound again');
      left_to_sweep = 0;
    }
    let finish = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const worker: Worker = {
      transaction,
      finished,
      finish,
      done: false,
      view: {
        transaction_id: transaction.id,
        user_id: transaction.user_id,
        type: transaction.type,
        amount: transaction.amount.toString(),
        currency: transaction.currency,
        phase: 'submitting',
        attempts: transaction.attempts,
        polls: 0,
        next_at: null,
        last_error: null,
      },
    };
    worker.finished.then(
      () => (worker.done = true),
      () => {},
    );
    workers.set(transaction.id, worker);
    inContext(trace, () => drive(worker, round_start))
      .catch((error: unknown) =>
        options.log.error({ err: error, transaction_id: transaction.id }, 'payment worker failed'),
      )
      .finally(() => {
        if (workers.get(transaction.id) === worker) workers.delete(transaction.id);
      });
  }

  return {
    start,

    /** Called with every committed event: creations and retry requests start workers, results end them. */
    onCommitted(state: AccountState, changes: readonly Change[], traces?: readonly (Context | undefined)[]): void {
      changes.forEach(({ event, transaction }, i) => {
        const trace = traces?.[i];
        if (event.type === 'transaction_created') start(event.transaction, event.transaction.attempts, trace);
        // A new round of attempts: a dead letter's retry gives the payment `attempts_max` more.
        if (event.type === 'retry_requested' && state.open.has(transaction.id)) {
          start(transaction, transaction.attempts, trace);
        }
        if (event.type === 'transaction_succeeded' || event.type === 'transaction_failed') {
          workers.get(event.transaction_id)?.finish();
        }
      });
    },

    /** Called when an account recovers (or a sweep finds it): its open transactions resume, unless dead-lettered. */
    onRecovered(state: AccountState): void {
      for (const transaction of state.open.values()) {
        if (workers.has(transaction.id)) continue;
        options.deadLetters.isOpen(transaction.id).then(
          (dead) => dead || start(transaction),
          (error: unknown) => options.log.warn({ err: error }, 'could not check dead letters; will resume later'),
        );
      }
    },

    /** Ends the workers of the accounts `moved` says went to another instance (a shard lost). */
    release(moved: (user_id: string) => boolean): void {
      for (const worker of [...workers.values()]) if (moved(worker.transaction.user_id)) release(worker);
    },

    /** Whether a worker drives this transaction here now. */
    has: (transaction_id: string): boolean => workers.has(transaction_id),

    /** The account of a transaction a worker here drives (no query: a bank callback's fast path), if any. */
    accountOf: (transaction_id: string): string | undefined => workers.get(transaction_id)?.transaction.user_id,

    inFlight: (): PaymentView[] => [...workers.values()].map((worker) => ({ ...worker.view })),

    /** How many payments are driven here now, without copying their views (sampled every second). */
    inFlightCount: (): number => workers.size,

    /** Stops every worker where it stands; their transactions resume after the next recovery. */
    stop(): void {
      stopped = true;
      for (const sleeper of sleepers) wake(sleeper);
      for (const worker of workers.values()) worker.finish();
    },
  };
}

export type Payments = ReturnType<typeof createPayments>;
