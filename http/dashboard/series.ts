import type { Registry as MetricsRegistry } from 'prom-client';
import type { BankClient, BreakerState } from '../../engine/bank-client.ts';
import type { Payments } from '../../engine/payments.ts';

/** Where the samples come from: what the process already counts, read, never counted twice. */
export interface SeriesSources {
  /** The gateway's prom-client registry (metrics.ts): transactions and bank calls. */
  metrics: MetricsRegistry;
  payments: Pick<Payments, 'inFlightCount'>;
  bank: Pick<BankClient, 'state'>;
}

/**
 * What `GET /api/series` answers: one column per measure, oldest sample first, all of the same length
 * (uPlot's own data layout). A rate is over the interval that ends at its `t`; null where there was
 * nothing to measure (no bank call in that interval).
 */
export interface Series {
  interval_s: number;
  window_s: number;
  /** Unix time of each sample, in seconds. */
  t: number[];
  created_per_s: number[];
  /** Transactions that reached a final status (succeeded or failed), and those of them that failed. */
  settled_per_s: number[];
  failed_per_s: number[];
  /** Calls that reached the bank (refusals of the open breaker are not calls). */
  bank_calls_per_s: number[];
  /** Latency of the bank calls of the interval, estimated from the histogram's buckets, in ms. */
  bank_p50_ms: (number | null)[];
  bank_p99_ms: (number | null)[];
  /** Share of the interval's bank calls that failed transiently (timeout, 5xx, connection), 0 to 1. */
  bank_error_rate: (number | null)[];
  breaker: BreakerState[];
  payments_in_flight: number[];
}

/** The counters' totals at one instant; a sample is the difference between two of these. */
interface Totals {
  at_ms: number;
  created: number;
  settled: number;
  failed: number;
  bank_calls: number;
  bank_errors: number;
  /** Cumulative count per bucket upper bound (seconds, +Inf last), both operations together. */
  bank_buckets: Map<number, number>;
}

type Measure = Exclude<keyof Series, 'interval_s' | 'window_s' | 'breaker'>;
const MEASURES: readonly Measure[] = [
  't',
  'created_per_s',
  'settled_per_s',
  'failed_per_s',
  'bank_calls_per_s',
  'bank_p50_ms',
  'bank_p99_ms',
  'bank_error_rate',
  'payments_in_flight',
];
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'half_open', 'open'];

/** Sum of a metric's values whose labels pass `keep` (0 when the metric is not registered). */
async function total(
  registry: MetricsRegistry,
  name: string,
  keep: (labels: Record<string, string | number | undefined>) => boolean = () => true,
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, { labels, value }) => (keep(labels) ? sum + value : sum), 0);
}

async function bucketTotals(registry: MetricsRegistry): Promise<Map<number, number>> {
  const buckets = new Map<number, number>();
  const metric = registry.getSingleMetric('gateway_bank_call_duration_seconds');
  if (!metric) return buckets;
  // The buckets are the values with an `le` label; the histogram's sum and count have none.
  for (const { labels, value } of (await metric.get()).values) {
    if (labels.le === undefined) continue;
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + value);
  }
  return buckets;
}

async function readTotals(registry: MetricsRegistry, at_ms: number): Promise<Totals> {
  const [created, settled, failed, bank_calls, bank_errors, bank_buckets] = await Promise.all([
    total(registry, 'gateway_transactions_created_total'),
    total(registry, 'gateway_transactions_finished_total'),
    total(registry, 'gateway_transactions_finished_total', (labels) => labels.outcome === 'failed'),
    total(registry, 'gateway_bank_calls_total', (labels) => labels.outcome !== 'breaker_open'),
    total(registry, 'gateway_bank_calls_total', (labels) => labels.outcome === 'transient'),
    bucketTotals(registry),
  ]);
  return { at_ms, created, settled, failed, bank_calls, bank_errors, bank_buckets };
}

/** Rates to three decimals: finer than a chart shows, and the answer stays small (~40 KB when full). */
const thousandths = (value: number) => Math.round(value * 1000) / 1000;

/** Seconds → ms, to the µs: an estimate from buckets has no more precision than that to offer. */
const toMs = (seconds: number) => Math.round(seconds * 1e6) / 1e3;

/**
 * The `q` quantile of the observations that fell between two readings of a cumulative histogram, in
 * ms: linear within the bucket that holds it, as Prometheus's histogram_quantile does, and the highest
 * finite bound when it lies in the +Inf bucket. Null when nothing was observed.
 */
export function intervalQuantile(
  before: ReadonlyMap<number, number>,
  after: ReadonlyMap<number, number>,
  q: number,
): number | null {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const observed = counts[counts.length - 1] ?? 0;
  if (observed <= 0) return null;
  const rank = q * observed;
  for (let i = 0; i < bounds.length; i += 1) {
    if (counts[i]! < rank) continue;
    const upper = bounds[i]!;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    if (upper === Infinity) return toMs(lower);
    const below = i === 0 ? 0 : counts[i - 1]!;
    return toMs(lower + ((upper - lower) * (rank - below)) / (counts[i]! - below));
  }
  return null;
}

/**
 * The dashboard's charts of the last minutes: every `interval_s` it reads the counters of the metrics
 * registry, the breaker's state and the payments in flight, and keeps the differences in a ring of
 * `window_s / interval_s` samples (columns of floats, NaN for "nothing measured"), so memory stays
 * fixed however long the process runs (600 samples: about 45 KB). One sample is six reads of the
 * registry's metrics, about 60 µs on a loaded machine: sampling costs under 0.01 % of a core.
 */
export function createSeries(sources: SeriesSources, options: { interval_s: number; window_s: number }) {
  const capacity = Math.floor(options.window_s / options.interval_s);
  const columns = Object.fromEntries(MEASURES.map((name) => [name, new Float64Array(capacity)])) as Record<
    Measure,
    Float64Array
  >;
  const breaker = new Uint8Array(capacity);
  let next = 0;
  let length = 0;
  let previous: Totals | undefined;

  function push(values: Record<Measure, number | null>, state: BreakerState): void {
    for (const name of MEASURES) columns[name][next] = values[name] ?? NaN;
    breaker[next] = BREAKER_STATES.indexOf(state);
    next = (next + 1) % capacity;
    length = Math.min(length + 1, capacity);
  }

  /** The ring's indexes, oldest first. */
  function order(): number[] {
    const start = (next - length + capacity) % capacity;
    return Array.from({ length }, (_, i) => (start + i) % capacity);
  }

  return {
    /** Reads the sources once; from the second reading on, records the interval since the last one. */
    async sample(at_ms = Date.now()): Promise<void> {
      const now = await readTotals(sources.metrics, at_ms);
      const before = previous;
      previous = now;
      if (!before) return;
      const seconds = Math.max(now.at_ms - before.at_ms, 1) / 1000;
      const per_s = (field: 'created' | 'settled' | 'failed' | 'bank_calls') =>
        thousandths((now[field] - before[field]) / seconds);
      const calls = now.bank_calls - before.bank_calls;
      push(
        {
          t: now.at_ms / 1000,
          created_per_s: per_s('created'),
          settled_per_s: per_s('settled'),
          failed_per_s: per_s('failed'),
          bank_calls_per_s: per_s('bank_calls'),
          bank_p50_ms: intervalQuantile(before.bank_buckets, now.bank_buckets, 0.5),
          bank_p99_ms: intervalQuantile(before.bank_buckets, now.bank_buckets, 0.99),
          bank_error_rate: calls > 0 ? thousandths((now.bank_errors - before.bank_errors) / calls) : null,
          payments_in_flight: sources.payments.inFlightCount(),
        },
        sources.bank.state(),
      );
    },

    read(): Series {
      const indexes = order();
      const column = (name: Measure) =>
        indexes.map((i) => {
          const value = columns[name][i]!;
          return Number.isNaN(value) ? null : value;
        });
      return {
        interval_s: options.interval_s,
        window_s: options.window_s,
        t: column('t') as number[],
        created_per_s: column('created_per_s') as number[],
        settled_per_s: column('settled_per_s') as number[],
        failed_per_s: column('failed_per_s') as number[],
        bank_calls_per_s: column('bank_calls_per_s') as number[],
        bank_p50_ms: column('bank_p50_ms'),
        bank_p99_ms: column('bank_p99_ms'),
        bank_error_rate: column('bank_error_rate'),
        breaker: indexes.map((i) => BREAKER_STATES[breaker[i]!]!),
        payments_in_flight: column('payments_in_flight') as number[],
      };
    },
  };
}

export type SeriesRing = ReturnType<typeof createSeries>;
