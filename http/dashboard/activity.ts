import type { Change } from '../../engine/account.ts';
import { toReadModelRow, type ReadModelRow } from '../../persistence/transaction-row.ts';

/** The columns of its read-model row the dashboard lists of a finished transaction, in this order. */
const FINISHED_FIELDS = [
  'id',
  'user_id',
  'type',
  'amount',
  'currency',
  'status',
  'failure_code',
  'attempts',
  'completed_at',
] as const;

/** A finished transaction as the dashboard lists it (amount as a decimal string). */
export type FinishedTransaction = Pick<ReadModelRow, (typeof FINISHED_FIELDS)[number]>;

function finished(row: ReadModelRow): FinishedTransaction {
  return Object.fromEntries(FINISHED_FIELDS.map((field) => [field, row[field]])) as FinishedTransaction;
}

/** Transactions per second over the last `window_s` seconds. */
export interface Throughput {
  window_s: number;
  created_per_s: number;
  finished_per_s: number;
}

interface Bucket {
  second: number;
  created: number;
  finished: number;
}

/**
 * What the dashboard shows of recent transaction activity in this instance, fed by the accounts'
 * `onCommitted`: the last `recent_max` finished transactions (a ring), and per-second counts of
 * creations and results over the last `window_s` seconds (one bucket per second, reused in turn).
 */
export function createActivity(options: { recent_max: number; window_s: number; now_ms?: () => number }) {
  const now_ms = options.now_ms ?? Date.now;
  const recent: FinishedTransaction[] = [];
  let next = 0;
  const buckets: Bucket[] = Array.from({ length: options.window_s }, () => ({ second: -1, created: 0, finished: 0 }));

  function bucketNow(): Bucket {
    const second = Math.floor(now_ms() / 1000);
    const bucket = buckets[second % options.window_s]!;
    if (bucket.second !== second) Object.assign(bucket, { second, created: 0, finished: 0 });
    return bucket;
  }

  return {
    /** Records committed events, each with its transaction as it left it. */
    record(changes: readonly Change[]): void {
      for (const { event, transaction } of changes) {
        if (event.type === 'transaction_created') bucketNow().created += 1;
        if (event.type !== 'transaction_succeeded' && event.type !== 'transaction_failed') continue;
        bucketNow().finished += 1;
        recent[next] = finished(toReadModelRow(transaction));
        next = (next + 1) % options.recent_max;
      }
    },

    /** The last finished transactions, newest first. */
    recent(): FinishedTransaction[] {
      return [...recent.slice(next), ...recent.slice(0, next)].reverse();
    },

    throughput(): Throughput {
      const oldest = Math.floor(now_ms() / 1000) - options.window_s;
      const live = buckets.filter((bucket) => bucket.second > oldest);
      const sum = (field: 'created' | 'finished') => live.reduce((total, bucket) => total + bucket[field], 0);
      return {
        window_s: options.window_s,
        created_per_s: sum('created') / options.window_s,
        finished_per_s: sum('finished') / options.window_s,
      };
    },
  };
}

export type Activity = ReturnType<typeof createActivity>;
