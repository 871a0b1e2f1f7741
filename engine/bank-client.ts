import CircuitBreaker from 'opossum';
import { z } from 'zod';
import { createHop, HOP_DEFAULTS, type HopError } from '../hop.ts';
import type { Logger } from '../logger.ts';
import { ATTRIBUTES as A, endSpan, injectContext, SpanKind, startSpan, tracingOn, withSpan } from '../tracing.ts';
import type { TransactionType } from './account.ts';

/** What the bank said to a transfer request. */
export type SubmitOutcome =
  | { kind: 'accepted'; bank_reference: string }
  | { kind: 'rejected'; code: string; message: string }
  | { kind: 'transient'; error: string }
  | { kind: 'breaker_open' };

/** What the bank says of a transfer it was asked about. */
export type StatusOutcome =
  | { kind: 'found'; status: 'processing' | 'succeeded' | 'failed'; bank_reference: string; failure?: Failure }
  | { kind: 'not_found' }
  | { kind: 'transient'; error: string }
  | { kind: 'breaker_open' };

type Failure = { code: string; message: string };
/** The circuit breaker's state, as the dashboard and metrics show it. */
export type BreakerState = 'closed' | 'open' | 'half_open';

/** A failure worth retrying (timeout, 5xx, connection): the only kind that counts against the breaker. */
class TransientError extends Error {}

const accepted = z.object({ bank_reference: z.string().min(1) });
const view = z.object({
  bank_reference: z.string().min(1),
  status: z.enum(['processing', 'succeeded', 'failed']),
  failure_code: z.string().optional(),
  failure_message: z.string().optional(),
});
const problem = z.object({ error: z.string().optional(), message: z.string().optional() }).partial();

/** The bank hop's own bounds (BANK_TIMEOUT_MS bounds the whole call and its headers). */
export const BANK_HOP = {
  /** A new connection to the bank must be up within this long (at most BANK_TIMEOUT_MS). */
  connect_timeout_ms: HOP_DEFAULTS.connect_timeout_ms,
  /** An idle pooled connection is closed after this long (the bank server keeps one 5 s). */
  idle_ms: HOP_DEFAULTS.idle_ms,
} as const;

export interface BankClientOptions {
  base_url: string;
  /** A whole call: no answer (headers and body) within it is a transient failure. */
  timeout_ms: number;
  breaker_reset_ms: number;
  /** HTTP calls to the bank at once; the rest wait their turn (a bound on sockets and on the bank). */
  calls_in_flight_max: number;
  log: Logger;
  onBreakerState?: (state: BreakerState) => void;
  /** Told of every call with its outcome's kind and latency (metrics). */
  onCall?: (operation: 'submit' | 'status', outcome: string, latency_ms: number) => void;
}

/**
 * The bank over HTTP, behind a circuit breaker (opossum): after enough transient failures in a
 * rolling window it opens, and calls fail at once with `breaker_open` until a trial call succeeds.
 * 4xx answers are the bank's verdict, not its ill health, and never open the breaker.
 */
export function createBankClient(options: BankClientOptions) {
  // One pool of keep-alive connections for every call (and the health probe, hence one socket more
  // than the call slots). A call that got no answer — a timeout, a refused or reset connection, also a
  // reset of a reused socket as the transfer went out — is transient, as it was with fetch: the payment
  // worker tries again with the same reference (the bank deduplicates by it) or polls the status.
  const hop = createHop({
    sockets_max: options.calls_in_flight_max + 1,
    timeout_ms: options.timeout_ms,
    connect_timeout_ms: BANK_HOP.connect_timeout_ms,
    idle_ms: BANK_HOP.idle_ms,
  });
  const JSON_BODY = { 'content-type': 'application/json' };
  /** A call's headers; tracing on, with `traceparent`, so that the bank's spans continue this call's. */
  const headersFor = (body: unknown): Record<string, string> => {
    if (!tracingOn()) return body === undefined ? {} : JSON_BODY;
    return injectContext(body === undefined ? {} : { ...JSON_BODY });
  };

  async function call(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    let response;
    try {
      response = await hop.request(options.base_url, path, {
        method,
        headers: headersFor(body),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      const timedOut = (error as HopError).timedOut === true;
      throw new TransientError(
        timedOut ? `no answer within ${options.timeout_ms} ms` : `connection failed: ${String(error)}`,
      );
    }
    if (response.status >= 500) throw new TransientError(`bank answered ${response.status}`);
    const text = response.body.toString('utf8');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, json };
  }

  const breaker = new CircuitBreaker(call, {
    timeout: false,
    errorThresholdPercentage: 50,
    volumeThreshold: 5,
    rollingCountTimeout: 10_000,
    rollingCountBuckets: 10,
    resetTimeout: options.breaker_reset_ms,
  });
  const report = (state: BreakerState) => () => {
    options.log.warn({ breaker: state }, 'bank circuit breaker changed state');
    options.onBreakerState?.(state);
  };
  breaker.on('open', report('open'));
  breaker.on('halfOpen', report('half_open'));
  breaker.on('close', report('closed'));

  let inFlight = 0;
  const waiting: (() => void)[] = [];
  async function slot(): Promise<() => void> {
    if (inFlight >= options.calls_in_flight_max) await new Promise<void>((resolve) => waiting.push(resolve));
    inFlight += 1;
    return () => {
      inFlight -= 1;
      waiting.shift()?.();
    };
  }

  async function fire(method: 'GET' | 'POST', path: string, body?: unknown) {
    const release = await slot();
    try {
      return await breaker.fire(method, path, body);
    } catch (error) {
      if ((error as { code?: string }).code === 'EOPENBREAKER') return 'breaker_open' as const;
      return { transient: error instanceof Error ? error.message : String(error) };
    } finally {
      release();
    }
  }

  // Concurrent health checks share one probe: a busy load balancer costs the bank one request at a time.
  let probing: Promise<boolean> | undefined;
  async function probe(timeout_ms: number): Promise<boolean> {
    try {
      const response = await hop.request(options.base_url, '/health', { method: 'GET', timeout_ms });
      return response.status >= 200 && response.status < 300;
    } catch {
      return false;
    }
  }

  /** Times a call for the metrics and, tracing on, wraps it in a client span that says what came of it. */
  async function observed<T extends { kind: string }>(
    operation: 'submit' | 'status',
    reference: string,
    call: () => Promise<T>,
  ) {
    const started = performance.now();
    const span = startSpan(operation === 'submit' ? 'POST /bank/v1/transfers' : 'GET /bank/v1/transfers/:reference', {
      kind: SpanKind.CLIENT,
      attributes: { [A.method]: operation === 'submit' ? 'POST' : 'GET', [A.transaction_id]: reference },
    });
    const outcome = await withSpan(span, call);
    endSpan(span, outcome.kind === 'transient', { [A.outcome]: outcome.kind });
    options.onCall?.(operation, outcome.kind, performance.now() - started);
    return outcome;
  }

  async function submit(transaction: {
    id: string;
    type: TransactionType;
    amount: bigint;
    currency: string;
    user_id: string;
  }): Promise<SubmitOutcome> {
    const answer = await fire('POST', '/bank/v1/transfers', {
      reference: transaction.id,
      direction: transaction.type === 'deposit' ? 'credit' : 'debit',
      amount: Number(transaction.amount),
      currency: transaction.currency,
      account: transaction.user_id,
    });
    if (answer === 'breaker_open') return { kind: 'breaker_open' };
    if ('transient' in answer) return { kind: 'transient', error: answer.transient };
    if (answer.status === 202 || answer.status === 200) {
      const body = accepted.safeParse(answer.json);
      if (body.success) return { kind: 'accepted', bank_reference: body.data.bank_reference };
      return { kind: 'transient', error: 'the bank accepted with an unreadable body' };
    }
    const details = problem.safeParse(answer.json);
    return {
      kind: 'rejected',
      code: details.success && details.data.error ? `bank_${details.data.error}` : 'bank_rejected',
      message: `The bank refused the transfer (${answer.status}${details.success && details.data.message ? `: ${details.data.message}` : ''}).`,
    };
  }

  async function status(reference: string): Promise<StatusOutcome> {
    const answer = await fire('GET', `/bank/v1/transfers/${encodeURIComponent(reference)}`);
    if (answer === 'breaker_open') return { kind: 'breaker_open' };
    if ('transient' in answer) return { kind: 'transient', error: answer.transient };
    if (answer.status === 404) return { kind: 'not_found' };
    const body = view.safeParse(answer.json);
    if (answer.status !== 200 || !body.success) return { kind: 'transient', error: `status answered ${answer.status}` };
    const { bank_reference, status, failure_code, failure_message } = body.data;
    return failure_code
      ? { kind: 'found', status, bank_reference, failure: { code: failure_code, message: failure_message ?? '' } }
      : { kind: 'found', status, bank_reference };
  }

  return {
    /** Asks the bank to move money for a transaction; the reference makes a retry safe. */
    submit: (transaction: Parameters<typeof submit>[0]) =>
      observed('submit', transaction.id, () => submit(transaction)),

    /** Asks the bank what became of a transfer (when no callback came in time). */
    status: (reference: string) => observed('status', reference, () => status(reference)),

    /**
     * Whether the bank answers its `GET /health` with 2xx within `timeout_ms`. It goes around the breaker
     * and the call slots, so it neither counts against the breaker nor waits behind payments.
     */
    reachable: (timeout_ms: number): Promise<boolean> =>
      (probing ??= probe(timeout_ms).finally(() => (probing = undefined))),

    state: (): BreakerState => (breaker.opened ? 'open' : breaker.halfOpen ? 'half_open' : 'closed'),
    /** Stops the breaker and closes the connections (a call in flight fails as transient). */
    shutdown: () => {
      breaker.shutdown();
      hop.close();
    },
  };
}

export type BankClient = ReturnType<typeof createBankClient>;
