import type { Context } from '@opentelemetry/api';
import { QUEUE_APPENDS_MAX_DEFAULT } from '../config.ts';
import { ATTRIBUTES as A, currentContext, endSpan, linksTo, startSpan } from '../tracing.ts';
import { isStorageFault } from './faults.ts';
import type { Logger } from '../logger.ts';
import { insertRecords, keySlot, type IdempotencyRecord } from './idempotency.ts';
import { insertInboxRecords, type InboxRecord } from './inbox.ts';
import type { Queryable, Sql } from './sql.ts';
import type { ReadModelRow } from './transaction-row.ts';
import { insertOutbox, usersWithEndpoints } from './webhook-outbox.ts';

/** One event as the journal stores it (payload already JSON-safe). */
export interface JournalEvent {
  type: string;
  transaction_id: string | null;
  payload: unknown;
  request_id: string | null;
  at: string;
}

/** What one actor commits at once: its events, the rows they change, and the idempotency records. */
export interface Append {
  user_id: string;
  shard: number;
  epoch: bigint;
  /** The sequence number of `events[0]`; the rest follow it. */
  first_seq: number;
  events: JournalEvent[];
  rows: ReadModelRow[];
  idempotency: IdempotencyRecord[];
  /** The bank callbacks whose settlements these events are: recorded in the same commit, so a redelivery finds them. */
  inbox?: InboxRecord[];
}

/**
 * What became of an append. `busy`: the queue was full, so nothing was sent to Postgres and nothing
 * was written; the actor refuses its commands as busy (503 `account_busy`) and keeps its state.
 */
export type AppendOutcome =
  | { ok: true }
  | { ok: false; reason: 'stale_epoch' | 'idempotency_conflict' | 'failed' | 'uncertain' | 'busy'; error?: unknown };

/** How often `close` looks whether the last batches have committed. */
const CLOSE_POLL_MS = 5;

/** A user's events read per query while an account recovers. */
const READ_PAGE_EVENTS_MAX = 5000;

export interface JournalOptions {
  batch_size_max: number;
  batch_wait_ms: number;
  flushes_in_flight_max: number;
  /** Appends waiting for a commit, at most; past it an append is refused `busy` at once. */
  queue_appends_max?: number;
  idempotency_ttl_hours: number;
  log: Logger;
  /** Called after each commit attempt with its size and latency (metrics). */
  onBatch?: (size: number, latency_ms: number) => void;
}

class IdempotencyConflict extends Error {}

/**
 * The group-committed journal. Appends from every actor queue here and are written in batches,
 * one Postgres transaction each: journal rows, read-model rows, idempotency records and merchant
 * webhook deliveries together, after checking each append's fencing epoch under a share lock on its
 * shard's lease row.
 */
export function createJournal(sql: Sql, options: JournalOptions) {
  /** `trace`: the appending turn's context, while tracing is on (the commit's span continues it). */
  const queue: { append: Append; resolve: (outcome: AppendOutcome) => void; trace?: Context }[] = [];
  const queue_appends_max = options.queue_appends_max ?? QUEUE_APPENDS_MAX_DEFAULT;
  let refusedSinceFull = 0;
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function kick(): void {
    while (inFlight < options.flushes_in_flight_max && queue.length >= options.batch_size_max) void flush();
    if (timer || inFlight >= options.flushes_in_flight_max || queue.length === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (queue.length > 0 && inFlight < options.flushes_in_flight_max) void flush();
    }, options.batch_wait_ms);
  }

  async function flush(): Promise<void> {
    inFlight += 1;
    const batch = queue.splice(0, options.batch_size_max);
    const started = performance.now();
    const span = commitSpan(batch);
    const outcomes = await commitKeysOnce(batch.map((item) => item.append));
    endSpan(
      span,
      outcomes.some((outcome) => !outcome.ok),
    );
    options.onBatch?.(batch.length, performance.now() - started);
    batch.forEach((item, i) => item.resolve(outcomes[i]!));
    inFlight -= 1;
    kick();
  }

  /**
   * One span per commit (tracing on), though it serves many requests: the child of the first traced
   * append's turn, linked to every other one, so that each request's trace reaches the commit that made
   * it durable without the commit being counted once per request.
   */
  function commitSpan(batch: typeof queue) {
    const parent = batch.find((item) => item.trace)?.trace;
    if (!parent) return undefined;
    const others = batch.map((item) => (item.trace === parent ? undefined : item.trace));
    return startSpan('journal commit', { attributes: { [A.appends]: batch.length }, links: linksTo(others) }, parent);
  }

  /**
   * Commits a batch in which no (caller, key) appears twice: one statement cannot insert a key twice
   * (Postgres refuses the whole statement), so an append whose key an earlier append of the batch
   * holds (two accounts, one caller's key) waits and is committed alone after it, which then finds
   * the key recorded and is refused as a conflict, as it would have been a moment later.
   */
  async function commitKeysOnce(appends: Append[]): Promise<AppendOutcome[]> {
    const { first, later } = splitBySharedKeys(appends);
    const outcomes: AppendOutcome[] = new Array<AppendOutcome>(appends.length);
    const firstOutcomes = await commitBatch(first.map((index) => appends[index]!));
    first.forEach((index, i) => (outcomes[index] = firstOutcomes[i]!));
    for (const index of later) outcomes[index] = await commitAlone(appends[index]!);
    return outcomes;
  }

  /** One transaction for the whole batch; if it fails, whatever the error, each append is retried alone. */
  async function commitBatch(appends: Append[]): Promise<AppendOutcome[]> {
    if (appends.length === 0) return [];
    try {
      return await sql.begin((tx) => writeAppends(tx, appends));
    } catch (error) {
      // The link failed: the batch's COMMIT may have reached Postgres, so no append of it is retried
      // (a retry of one that did commit would fail on its sequence number and be reported as failed).
      if (isStorageFault(error) || appends.length === 1) {
        const outcome = failure(error);
        return appends.map(() => outcome);
      }
      options.log.warn({ err: error, size: appends.length }, 'batch failed; committing its appends one by one');
      return Promise.all(appends.map(commitAlone));
    }
  }

  function commitAlone(append: Append): Promise<AppendOutcome> {
    return sql.begin((tx) => writeAppends(tx, [append])).then((outcomes) => outcomes[0]!, failure);
  }

  async function writeAppends(tx: Queryable, appends: Append[]): Promise<AppendOutcome[]> {
    const shards = [...new Set(appends.map((append) => append.shard))];
    // The epochs, and which users have merchant endpoints, in one round trip.
    const [leases, subscribed] = await Promise.all([
      tx<{ shard: number; epoch: bigint }[]>`
        SELECT shard, epoch FROM shard_leases
        WHERE shard IN (SELECT value::int FROM jsonb_array_elements_text(${JSON.stringify(shards)}::text::jsonb))
        FOR SHARE`,
      usersWithEndpoints(tx, appends),
    ]);
    const current = new Map(leases.map((lease) => [lease.shard, lease.epoch]));
    const outcomes = appends.map((append): AppendOutcome =>
      current.get(append.shard) === append.epoch ? { ok: true } : { ok: false, reason: 'stale_epoch' },
    );
    const live = appends.filter((_, i) => outcomes[i]!.ok);
    if (live.length === 0) return outcomes;
    // Sent together (postgres.js pipelines them on the transaction's connection): one round trip, not
    // five. Any failure, a conflicting idempotency key included, rolls the whole transaction back (a
    // webhook-id already in the inbox is not one: its settlement is applied once all the same). The
    // merchants' webhook deliveries commit with the changes they announce: none lost, none invented.
    await Promise.all([
      insertIdempotency(tx, live),
      insertJournal(tx, live),
      upsertReadModel(tx, live),
      insertInboxRecords(
        tx,
        live.flatMap((append) => append.inbox ?? []),
      ),
      insertOutbox(
        tx,
        live.filter((append) => subscribed.has(append.user_id)),
      ),
    ]);
    return outcomes;
  }

  async function insertIdempotency(tx: Queryable, appends: Append[]): Promise<void> {
    const records = appends.flatMap((append) => append.idempotency);
    const inserted = await insertRecords(tx, records, options.idempotency_ttl_hours);
    if (inserted !== records.length) throw new IdempotencyConflict('an idempotency key is already recorded');
  }

  async function insertJournal(tx: Queryable, appends: Append[]): Promise<void> {
    const rows = appends.flatMap((append) =>
      append.events.map((event, i) => ({
        user_id: append.user_id,
        seq: append.first_seq + i,
        shard: append.shard,
        epoch: append.epoch.toString(),
        type: event.type,
        transaction_id: event.transaction_id,
        payload: event.payload,
        request_id: event.request_id,
        created_at: event.at,
      })),
    );
    if (rows.length === 0) return;
    await tx`
      INSERT INTO journal (user_id, seq, shard, epoch, type, transaction_id, payload, request_id, created_at)
      SELECT user_id, seq, shard, epoch, type, transaction_id, payload, request_id, created_at
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb)
        AS r(user_id uuid, seq bigint, shard int, epoch bigint, type text, transaction_id uuid,
             payload jsonb, request_id text, created_at timestamptz)`;
  }

  async function upsertReadModel(tx: Queryable, appends: Append[]): Promise<void> {
    const rows = appends.flatMap((append) => append.rows);
    if (rows.length === 0) return;
    await tx`
      INSERT INTO transactions (id, user_id, type, amount, currency, status, description, metadata,
        failure_code, failure_message, bank_reference, attempts, request_id, created_at, updated_at, completed_at)
      SELECT id, user_id, type, amount, currency, status, description, metadata,
        failure_code, failure_message, bank_reference, attempts, request_id, created_at, updated_at, completed_at
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb)
        AS r(id uuid, user_id uuid, type text, amount bigint, currency text, status text, description text,
             metadata jsonb, failure_code text, failure_message text, bank_reference text, attempts int,
             request_id text, created_at timestamptz, updated_at timestamptz, completed_at timestamptz)
      ON CONFLICT (id) DO UPDATE SET
        status = excluded.status, failure_code = excluded.failure_code, failure_message = excluded.failure_message,
        bank_reference = excluded.bank_reference, attempts = excluded.attempts,
        updated_at = excluded.updated_at, completed_at = excluded.completed_at`;
  }

  /** One log line when the queue fills (and one when it has room again), not one per refused append. */
  function refuseFull(): AppendOutcome {
    if (refusedSinceFull === 0) options.log.warn({ queue_appends_max }, 'journal queue full; refusing appends as busy');
    refusedSinceFull += 1;
    return { ok: false, reason: 'busy' };
  }

  function failure(error: unknown): AppendOutcome {
    if (error instanceof IdempotencyConflict) return { ok: false, reason: 'idempotency_conflict' };
    // The link broke (or timed out) during the transaction: its COMMIT may have reached Postgres.
    if (isStorageFault(error)) {
      options.log.warn({ err: error }, 'journal append uncertain: the connection failed');
      return { ok: false, reason: 'uncertain', error };
    }
    options.log.error({ err: error }, 'journal append failed');
    return { ok: false, reason: 'failed', error };
  }

  return {
    /** Queues an append; resolves once it is committed (or refused). Never rejects. */
    append(append: Append): Promise<AppendOutcome> {
      if (closed) return Promise.resolve({ ok: false, reason: 'failed', error: new Error('journal closed') });
      // Such an append could never commit, and would take its whole batch's statement down with it.
      if (append.idempotency.length > 1 && new Set(keySlots(append)).size !== append.idempotency.length) {
        const error = new Error('an append holds one idempotency key twice');
        options.log.error({ err: error, user_id: append.user_id }, 'journal append refused');
        return Promise.resolve({ ok: false, reason: 'failed', error });
      }
      // Postgres is not keeping up: waiting longer would only add to every request's latency and to
      // memory. Nothing is sent, so the actor needs no recovery: it just refuses as busy.
      if (queue.length >= queue_appends_max) return Promise.resolve(refuseFull());
      if (refusedSinceFull > 0) {
        options.log.info({ refused: refusedSinceFull }, 'journal queue below its bound again');
        refusedSinceFull = 0;
      }
      const trace = currentContext();
      return new Promise((resolve) => {
        queue.push({ append, resolve, trace });
        kick();
      });
    },

    /** Appends waiting for a commit. */
    depth: () => queue.length,

    /** Stops taking appends and waits for the queued ones to commit. */
    async close(): Promise<void> {
      closed = true;
      while (queue.length > 0 || inFlight > 0) await new Promise((resolve) => setTimeout(resolve, CLOSE_POLL_MS));
    },
  };
}

export type Journal = ReturnType<typeof createJournal>;

/** The (caller, key) of each idempotency record of an append. */
function keySlots(append: Append): string[] {
  return append.idempotency.map((record) => keySlot(record.caller, record.key));
}

/**
 * Indexes of the appends that hold no key an earlier append of the batch holds (`first`), and of
 * the others (`later`), each list in batch order.
 */
function splitBySharedKeys(appends: readonly Append[]): { first: number[]; later: number[] } {
  const taken = new Set<string>();
  const first: number[] = [];
  const later: number[] = [];
  appends.forEach((append, index) => {
    const slots = keySlots(append);
    if (slots.some((slot) => taken.has(slot))) {
      later.push(index);
      return;
    }
    slots.forEach((slot) => taken.add(slot));
    first.push(index);
  });
  return { first, later };
}

/** Reads a user's events after `after_seq`, in order, a page at a time. */
export async function* readJournal(
  sql: Sql,
  user_id: string,
  after_seq: number,
  page_size = READ_PAGE_EVENTS_MAX,
): AsyncGenerator<{ seq: number; payload: unknown }> {
  let last = after_seq;
  for (;;) {
    const rows = await sql<{ seq: bigint; payload: unknown }[]>`
      SELECT seq, payload FROM journal WHERE user_id = ${user_id} AND seq > ${last}
      ORDER BY seq LIMIT ${page_size}`;
    for (const row of rows) yield { seq: Number(row.seq), payload: row.payload };
    if (rows.length < page_size) return;
    last = Number(rows[rows.length - 1]!.seq);
  }
}
