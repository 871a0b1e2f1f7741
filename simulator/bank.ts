import { randomUUID } from 'node:crypto';
import type { Context } from '@opentelemetry/api';
import nact from 'nact';
import type { Logger } from '../logger.ts';
import { currentContext } from '../tracing.ts';
import type { Direction, Scenarios, Settlement } from './scenarios.ts';

/** The largest amount one transfer may move, in minor units (the gateway's own bound). */
export const AMOUNT_MAX = 10n ** 12n;
const REFERENCE_LENGTH_MAX = 100;

export interface TransferRequest {
  /** Our transaction id: the bank deduplicates by it. */
  reference: string;
  direction: Direction;
  amount: bigint;
  currency: string;
  account: string;
}

export type TransferStatus = 'processing' | 'succeeded' | 'failed';

/** What the bank tells about one transfer, by status lookup and in its callbacks. */
export interface TransferView {
  reference: string;
  bank_reference: string;
  status: TransferStatus;
  failure_code?: string;
  failure_message?: string;
}

/** The body of a callback, per the Standard Webhooks payload shape. */
export interface BankCallback {
  type: 'transfer.succeeded' | 'transfer.failed';
  timestamp: string;
  data: TransferView;
}

/**
 * Where settled transfers are announced; `copies` above 1 repeats the same delivery (duplicates).
 * `trace`: the context of the submit that created the transfer (tracing on), which the callback carries.
 */
export interface CallbackSink {
  deliver(callback: BankCallback, copies: number, trace?: Context): unknown;
}

/**
 * The bank's answer to one attempt. `no_answer` stands for an HTTP request the bank never answers:
 * an in-process caller treats it as its own timeout.
 */
export type SubmitResult =
  | { kind: 'accepted'; bank_reference: string; status: TransferStatus }
  | { kind: 'no_answer' }
  | { kind: 'unavailable' }
  | { kind: 'invalid'; message: string }
  | { kind: 'reference_reused' };

export interface Bank {
  /** Submits one attempt; the same reference never creates a second transfer while it is remembered. */
  submit(request: TransferRequest): Promise<SubmitResult>;
  /** The transfer recorded under our reference, or undefined when the bank has none. */
  status(reference: string): Promise<TransferView | undefined>;
  /** Cancels pending settlements and stops the actors; callbacks already handed over are the sink's. */
  stop(): void;
}

type Reply<T> = nact.Ref<T>;
type Submit = { type: 'submit'; request: TransferRequest; reply_to: Reply<SubmitResult>; trace?: Context };
type StatusReply = Reply<TransferView | undefined>;
type TransferMessage = Submit | { type: 'status'; reply_to: StatusReply } | { type: 'settle' };
type RegistryMessage =
  Submit | { type: 'status'; reference: string; reply_to: StatusReply } | { type: 'settled'; reference: string };

interface TransferState {
  request: TransferRequest;
  view: TransferView;
  settlement: Settlement;
  /** The trace context of the submit that created the transfer, while tracing is on. */
  trace?: Context;
}

interface Entry {
  attempts: number;
  transfer?: Reply<TransferMessage>;
}

interface RegistryState {
  entries: Map<string, Entry>;
  /** References with nothing left to do, oldest first: the ones eviction may take. */
  idle_since_ms: Map<string, number>;
}

function requestProblem(request: TransferRequest): string | undefined {
  if (request.reference.length === 0 || request.reference.length > REFERENCE_LENGTH_MAX) {
    return `reference must have 1 to ${REFERENCE_LENGTH_MAX} characters`;
  }
  if (request.amount <= 0n || request.amount > AMOUNT_MAX) return `amount must be within 1 and ${AMOUNT_MAX}`;
  return undefined;
}

function sameTransfer(a: TransferRequest, b: TransferRequest): boolean {
  return a.direction === b.direction && a.amount === b.amount && a.currency === b.currency && a.account === b.account;
}

// The answer to an attempt the bank does not record.
function refusal(answer: 'no_answer' | 'unavailable' | 'invalid'): SubmitResult {
  if (answer === 'invalid') return { kind: 'invalid', message: 'The bank refused the request as invalid (simulated).' };
  return { kind: answer };
}

/**
 * The simulated bank: a registry actor that admits attempts by reference, and one actor per accepted
 * transfer that settles it after its delay and hands the result to the callback sink. Memory is bounded:
 * at most `transfers_max` references are remembered, and finished ones are forgotten after
 * `retention_ms` (a retry after that would create a new transfer, as a real bank's dedup window would).
 */
export function createBank(options: {
  scenarios: Scenarios;
  callbacks: CallbackSink;
  log: Logger;
  transfers_max?: number;
  retention_ms?: number;
  ask_timeout_ms?: number;
}): Bank {
  const { scenarios, callbacks } = options;
  const log = options.log.child({ module: 'bank' });
  const transfers_max = options.transfers_max ?? 100_000;
  const retention_ms = options.retention_ms ?? 3_600_000;
  const ask_timeout_ms = options.ask_timeout_ms ?? 5_000;
  const system = nact.start();
  const settle_timers = new Set<NodeJS.Timeout>();

  // A handler's exception would otherwise stop the actor for good; keep serving and say so.
  const resumeAfterCrash: nact.SupervisionActorFunc<unknown, nact.Ref<unknown>, nact.Ref<unknown>> = (
    message,
    error,
    ctx,
  ) => {
    log.error({ err: error, message_type: (message as { type?: string } | undefined)?.type }, 'bank actor crashed');
    return ctx.resume;
  };

  const settle = (state: TransferState): TransferState => {
    if (state.view.status !== 'processing') return state;
    const { outcome, callbacks: copies } = state.settlement;
    const view: TransferView = { ...state.view, ...outcome };
    nact.dispatch(registry, { type: 'settled', reference: view.reference });
    log.debug({ reference: view.reference, status: view.status, callbacks: copies }, 'transfer settled');
    if (copies > 0) {
      const type = view.status === 'succeeded' ? 'transfer.succeeded' : 'transfer.failed';
      callbacks.deliver({ type, timestamp: new Date().toISOString(), data: view }, copies, state.trace);
    }
    return { ...state, view };
  };

  const transferActor = (state: TransferState, message: TransferMessage): TransferState => {
    switch (message.type) {
      case 'submit': {
        const { bank_reference, status } = state.view;
        const same = sameTransfer(state.request, message.request);
        nact.dispatch(
          message.reply_to,
          same ? { kind: 'accepted', bank_reference, status } : { kind: 'reference_reused' },
        );
        return state;
      }
      case 'status':
        nact.dispatch(message.reply_to, state.view);
        return state;
      case 'settle':
        return settle(state);
    }
  };

  const markIdle = (state: RegistryState, reference: string, since_ms: number) => {
    state.idle_since_ms.delete(reference);
    state.idle_since_ms.set(reference, since_ms);
  };

  const evict = (state: RegistryState, reference: string) => {
    const transfer = state.entries.get(reference)?.transfer;
    if (transfer) nact.stop(transfer);
    state.entries.delete(reference);
    state.idle_since_ms.delete(reference);
  };

  const evictExpired = (state: RegistryState, now_ms: number) => {
    for (const [reference, since_ms] of state.idle_since_ms) {
      if (since_ms + retention_ms > now_ms) return;
      evict(state, reference);
    }
  };

  // Makes room for one more reference by forgetting the oldest idle one; false when every remembered
  // transfer is still processing.
  const makeRoom = (state: RegistryState): boolean => {
    if (state.entries.size < transfers_max) return true;
    const oldest = state.idle_since_ms.keys().next();
    if (oldest.done) return false;
    evict(state, oldest.value);
    return true;
  };

  // Spawns the transfer's actor and schedules its settlement. Transfers are the system's children, not
  // the registry's: nact copies an actor's children into the context of every message it handles, so
  // a registry parenting thousands of transfers would pay for all of them on each request.
  const accept = (request: TransferRequest, settlement: Settlement, trace: Context | undefined) => {
    const bank_reference = `bnk_${randomUUID()}`;
    const view: TransferView = { reference: request.reference, bank_reference, status: 'processing' };
    const transfer = nact.spawn(system, transferActor, bank_reference, {
      initialState: { request, view, settlement, trace },
      onCrash: resumeAfterCrash,
    });
    const timer = setTimeout(() => {
      settle_timers.delete(timer);
      nact.dispatch(transfer, { type: 'settle' });
    }, settlement.delay_ms);
    settle_timers.add(timer);
    return { bank_reference, transfer };
  };

  const admit = (state: RegistryState, self: Reply<RegistryMessage>, message: Submit) => {
    const { request, reply_to } = message;
    const now_ms = Date.now();
    evictExpired(state, now_ms);
    const entry = state.entries.get(request.reference);
    if (entry?.transfer) return nact.dispatch(entry.transfer, message);
    if (!entry && !makeRoom(state)) {
      log.warn({ transfers_max }, 'bank full: every remembered transfer is still processing');
      return nact.dispatch(reply_to, { kind: 'unavailable' });
    }
    const attempts = (entry?.attempts ?? 0) + 1;
    const admission = scenarios.admit(request, attempts);
    // A fault injected on purpose (no answer, 503, 400, an answer lost) is worth seeing, but it is no error.
    if (admission.answer === 'accepted')
      log.debug({ reference: request.reference, attempts, ...admission }, 'attempt admitted');
    else log.warn({ reference: request.reference, attempts, ...admission }, 'simulated fault');
    if (admission.answer === 'accepted' || admission.answer === 'accepted_without_answer') {
      const { bank_reference, transfer } = accept(request, admission.settlement, message.trace);
      state.entries.set(request.reference, { attempts, transfer });
      state.idle_since_ms.delete(request.reference);
      const answered = admission.answer === 'accepted';
      return nact.dispatch(
        reply_to,
        answered ? { kind: 'accepted', bank_reference, status: 'processing' } : { kind: 'no_answer' },
      );
    }
    state.entries.set(request.reference, { attempts });
    markIdle(state, request.reference, now_ms);
    return nact.dispatch(reply_to, refusal(admission.answer));
  };

  const registryActor = (state: RegistryState, message: RegistryMessage, ctx: { self: Reply<RegistryMessage> }) => {
    switch (message.type) {
      case 'submit':
        admit(state, ctx.self, message);
        break;
      case 'status': {
        const transfer = state.entries.get(message.reference)?.transfer;
        if (transfer) nact.dispatch(transfer, { type: 'status', reply_to: message.reply_to });
        else nact.dispatch(message.reply_to, undefined);
        break;
      }
      case 'settled':
        if (state.entries.has(message.reference)) markIdle(state, message.reference, Date.now());
        break;
    }
    return state;
  };

  const registry: Reply<RegistryMessage> = nact.spawn(system, registryActor, 'transfers', {
    initialState: { entries: new Map(), idle_since_ms: new Map() },
    onCrash: resumeAfterCrash,
  });

  return {
    async submit(request) {
      const problem = requestProblem(request);
      if (problem) return { kind: 'invalid', message: problem };
      // The submit's context goes with it to the transfer, whose callback continues the trace.
      const trace = currentContext();
      try {
        return await nact.query(
          registry,
          (reply_to: Reply<SubmitResult>) => ({ type: 'submit', request, reply_to, trace }),
          ask_timeout_ms,
        );
      } catch (error) {
        // The attempt may or may not have been recorded; a retry with the same reference is safe.
        log.warn({ err: error, reference: request.reference }, 'bank did not answer in time');
        return { kind: 'unavailable' };
      }
    },
    status(reference) {
      return nact.query(registry, (reply_to: StatusReply) => ({ type: 'status', reference, reply_to }), ask_timeout_ms);
    },
    stop() {
      for (const timer of settle_timers) clearTimeout(timer);
      settle_timers.clear();
      nact.stop(system);
    },
  };
}
