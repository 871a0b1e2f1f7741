import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Change } from './engine/account.ts';
import type { BreakerState } from './engine/bank-client.ts';

// Prometheus's own conventions win over ours here: base units (seconds) and `_total` on counters,
// so that dashboards and alert rules written for any service read these the same way.

/** What the gauges read when Prometheus scrapes; given once the parts of the gateway exist. */
export interface MetricSources {
  actorsAlive(): number;
  mailboxDepth(): number;
  shardsOwned(): number;
  circuitState(): BreakerState;
  paymentsInFlight(): number;
  journalQueueDepth(): number;
}

/** One answered HTTP request, as the access log sees it. */
export interface RequestObservation {
  method: string;
  /** The matched route pattern (`/api/v1/deposits/:id`), never the raw path; `unmatched` otherwise. */
  route: string;
  status: number;
  latency_ms: number;
}

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'half_open', 'open'];
// Anything else a client sends as a method would be a label value of its choosing: unbounded.
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/**
 * The gateway's metrics in a registry of its own (not prom-client's global one, so that two gateways
 * in one process, as in the tests, keep apart): counters and histograms the parts record into through
 * the methods below, gauges read at scrape time, and the Node process's default metrics.
 */
export function createMetrics() {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  let sources: MetricSources | undefined;

  const httpRequests = new Counter({
    name: 'gateway_http_requests_total',
    help: 'HTTP requests answered on the public port, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: 'gateway_http_request_duration_seconds',
    help: 'Time to answer an HTTP request on the public port, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers,
  });
  const created = new Counter({
    name: 'gateway_transactions_created_total',
    help: 'Transactions created (journaled), by type.',
    labelNames: ['type'] as const,
    registers,
  });
  const finished = new Counter({
    name: 'gateway_transactions_finished_total',
    help: 'Transactions that reached a final status, by type and outcome.',
    labelNames: ['type', 'outcome'] as const,
    registers,
  });
  const bankCalls = new Counter({
    name: 'gateway_bank_calls_total',
    help: 'Calls to the bank, by operation and outcome (breaker_open: refused without calling).',
    labelNames: ['operation', 'outcome'] as const,
    registers,
  });
  const bankDuration = new Histogram({
    name: 'gateway_bank_call_duration_seconds',
    help: 'Time a bank call took, by operation.',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers,
  });
  const retries = new Counter({
    name: 'gateway_payment_retries_total',
    help: 'Payments submitted to the bank again, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const deadLetters = new Counter({
    name: 'gateway_dead_letters_total',
    help: 'Payments that gave up and were filed as dead letters.',
    registers,
  });
  const batchSize = new Histogram({
    name: 'gateway_journal_batch_size',
    help: 'Appends committed together in one journal transaction.',
    buckets: BATCH_SIZE_BUCKETS,
    registers,
  });
  const commitDuration = new Histogram({
    name: 'gateway_journal_commit_duration_seconds',
    help: 'Time one journal batch took to commit.',
    buckets: LATENCY_BUCKETS_S,
    registers,
  });

  const gauge = (name: string, help: string, read: (from: MetricSources) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (sources) this.set(read(sources));
      },
    });
  gauge('gateway_actors_alive', 'Account actors alive in this instance.', (from) => from.actorsAlive());
  gauge('gateway_actor_mailbox_depth', 'Requests waiting in all actor mailboxes.', (from) => from.mailboxDepth());
  gauge('gateway_shards_owned', 'Shards this instance owns.', (from) => from.shardsOwned());
  gauge('gateway_payments_in_flight', 'Payments being driven against the bank.', (from) => from.paymentsInFlight());
  gauge('gateway_journal_queue_depth', 'Appends waiting for a journal commit.', (from) => from.journalQueueDepth());
  new Gauge({
    name: 'gateway_bank_circuit_state',
    help: "1 for the state the bank's circuit breaker is in, 0 for the others.",
    labelNames: ['state'] as const,
    registers,
    collect() {
      if (!sources) return;
      const current = sources.circuitState();
      for (const state of BREAKER_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });

  return {
    registry,

    /** Starts the gauges reading from the gateway's parts. */
    watch: (from: MetricSources): void => {
      sources = from;
    },

    /** Counts one answered request. */
    request: (observed: RequestObservation): void => {
      const labels = {
        method: METHODS.has(observed.method) ? observed.method : 'other',
        route: observed.route,
        status: String(observed.status),
      };
      httpRequests.inc(labels);
      httpDuration.observe(labels, observed.latency_ms / 1000);
    },

    /** Counts creations and final results among committed events (the accounts' `onCommitted`). */
    committed: (changes: readonly Change[]): void => {
      for (const { event, transaction } of changes) {
        if (event.type === 'transaction_created') created.inc({ type: transaction.type });
        if (event.type === 'transaction_succeeded' || event.type === 'transaction_failed') {
          finished.inc({ type: transaction.type, outcome: transaction.status });
        }
      }
    },

    /** Counts one bank call and its latency. */
    bankCall: (operation: 'submit' | 'status', outcome: string, latency_ms: number): void => {
      bankCalls.inc({ operation, outcome });
      if (outcome !== 'breaker_open') bankDuration.observe({ operation }, latency_ms / 1000);
    },

    /** Counts one payment submitted again. */
    retry: (reason: 'transient' | 'not_found'): void => retries.inc({ reason }),

    /** Counts one payment filed as a dead letter. */
    deadLetter: (): void => deadLetters.inc(),

    /** Records one journal commit (the journal's `onBatch`). */
    journalBatch: (size: number, latency_ms: number): void => {
      batchSize.observe(size);
      commitDuration.observe(latency_ms / 1000);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
