import type { Queryable, Sql } from './sql.ts';

/** One string per (caller, key): a key is scoped to its caller, and NUL appears in neither. */
export function keySlot(caller: string, key: string): string {
  return `${caller}\u0000${key}`;
}

/**
 * The answer kept under a key: a response as it went on the wire (a handler that commits nothing but
 * its record), or an account command's outcome as the engine stored it, which the edge renders.
 */
export type KeptAnswer = { status_code: number; body: string } | { outcome: unknown };

export interface IdempotencyRecord {
  caller: string;
  key: string;
  fingerprint: string;
  user_id: string | null;
  answer: KeptAnswer;
}

/** A record as its row holds it (`answer` in three nullable columns, exactly one side set). */
interface RecordRow {
  caller: string;
  key: string;
  fingerprint: string;
  user_id: string | null;
  status_code: number | null;
  body: string | null;
  /** JSON (text, when written: the column is `json`, which keeps the text, so key order survives a replay). */
  outcome: unknown;
}

function recordOfRow({ caller, key, fingerprint, user_id, status_code, body, outcome }: RecordRow): IdempotencyRecord {
  const answer = outcome !== null ? { outcome } : { status_code: status_code!, body: body! };
  return { caller, key, fingerprint, user_id, answer };
}

function rowOfRecord({ caller, key, fingerprint, user_id, answer }: IdempotencyRecord): RecordRow {
  return 'outcome' in answer
    ? { caller, key, fingerprint, user_id, status_code: null, body: null, outcome: JSON.stringify(answer.outcome) }
    : { caller, key, fingerprint, user_id, status_code: answer.status_code, body: answer.body, outcome: null };
}

/**
 * Records answers unless their keys already have live ones (an expired record is replaced); returns
 * how many were stored. The one upsert of a record, for the edge's handlers and the journal's commits.
 */
export async function insertRecords(tx: Queryable, records: IdempotencyRecord[], ttlHours: number): Promise<number> {
  if (records.length === 0) return 0;
  const inserted = await tx`
    INSERT INTO idempotency_keys (caller, key, fingerprint, user_id, status_code, body, outcome, expires_at)
    SELECT caller, key, fingerprint, user_id, status_code, body, outcome::json,
           now() + make_interval(hours => ${ttlHours})
    FROM jsonb_to_recordset(${JSON.stringify(records.map(rowOfRecord))}::text::jsonb)
      AS r(caller text, key text, fingerprint text, user_id uuid, status_code int, body text, outcome text)
    ON CONFLICT (caller, key) DO UPDATE SET
      fingerprint = excluded.fingerprint, user_id = excluded.user_id, status_code = excluded.status_code,
      body = excluded.body, outcome = excluded.outcome, created_at = now(), expires_at = excluded.expires_at
      WHERE idempotency_keys.expires_at <= now()
    RETURNING 1`;
  return inserted.length;
}

/** At most this many lookups share one query. */
const LOOKUPS_PER_QUERY_MAX = 500;

/**
 * Lookups waiting for Postgres (queued for the turn's query, or in a query not yet answered) at most,
 * by default. Every POST waits on one, so more than this means Postgres is not keeping up; past it a
 * lookup fails at once with `IdempotencyLookupsFull` (the edge answers 503 `storage_unavailable`).
 */
export const LOOKUPS_PENDING_MAX_DEFAULT = 4096;

/** A lookup refused because `lookups_pending_max` lookups are already waiting for Postgres. */
export class IdempotencyLookupsFull extends Error {
  readonly code = 'IDEMPOTENCY_LOOKUPS_FULL';
  constructor(lookups_pending_max: number) {
    super(`${lookups_pending_max} idempotency lookups are already waiting for Postgres`);
    this.name = 'IdempotencyLookupsFull';
  }
}

export interface IdempotencyStoreOptions {
  /** Lookups waiting for Postgres at most; past it `find` rejects with `IdempotencyLookupsFull`. */
  lookups_pending_max?: number;
}

interface Lookup {
  caller: string;
  key: string;
  resolve(record: IdempotencyRecord | undefined): void;
  reject(error: unknown): void;
}

/**
 * Every POST looks its key up before it runs. The lookups asked during one turn of the event loop are
 * sent when the turn ends (setImmediate) as one query, rather than one round trip each; each still
 * gets exactly what its own `WHERE caller = … AND key = … AND expires_at > now()` would have returned.
 */
function createLookupBatcher(sql: Sql, lookups_pending_max: number) {
  let queue: Lookup[] = [];
  let pending = 0;

  async function query(batch: Lookup[]): Promise<void> {
    try {
      const wanted = JSON.stringify(batch.map(({ caller, key }, i) => ({ i, caller, key })));
      const rows = await sql<(RecordRow & { i: number })[]>`
        SELECT q.i, r.caller, r.key, r.fingerprint, r.user_id, r.status_code, r.body, r.outcome
        FROM jsonb_to_recordset(${wanted}::text::jsonb) AS q(i int, caller text, key text)
        JOIN idempotency_keys r ON r.caller = q.caller AND r.key = q.key
        WHERE r.expires_at > now()`;
      const found = new Map(rows.map(({ i, ...row }) => [i, recordOfRow(row)]));
      batch.forEach((lookup, i) => lookup.resolve(found.get(i)));
    } catch (error) {
      for (const lookup of batch) lookup.reject(error);
    } finally {
      pending -= batch.length;
    }
  }

  function flush(): void {
    const all = queue;
    queue = [];
    for (let i = 0; i < all.length; i += LOOKUPS_PER_QUERY_MAX) void query(all.slice(i, i + LOOKUPS_PER_QUERY_MAX));
  }

  return (caller: string, key: string): Promise<IdempotencyRecord | undefined> =>
    new Promise((resolve, reject) => {
      if (pending >= lookups_pending_max) {
        reject(new IdempotencyLookupsFull(lookups_pending_max));
        return;
      }
      pending += 1;
      if (queue.length === 0) setImmediate(flush);
      queue.push({ caller, key, resolve, reject });
    });
}

/** Idempotency records: the first response to a (caller, key), kept until it expires. */
export function createIdempotencyStore(sql: Sql, ttlHours: number, options: IdempotencyStoreOptions = {}) {
  const lookup = createLookupBatcher(sql, options.lookups_pending_max ?? LOOKUPS_PENDING_MAX_DEFAULT);
  return {
    ttlHours,

    /** The live record of a (caller, key), if any (batched with the lookups of the same moment). */
    find(caller: string, key: string): Promise<IdempotencyRecord | undefined> {
      return lookup(caller, key);
    },

    /** Records a response unless the key already has one; returns whether this one was stored. */
    async insert(record: IdempotencyRecord, tx: Queryable = sql): Promise<boolean> {
      return (await insertRecords(tx, [record], ttlHours)) === 1;
    },

    /** The newest live records of an account (its own keys and the admin's for it), for operators. */
    async recentForUser(
      user_id: string,
      limit: number,
    ): Promise<{ caller: string; key: string; answer: string; created_at: Date; expires_at: Date }[]> {
      // The answer in a word: the status code sent, or what the account's command came to.
      return sql`
        SELECT caller, key,
               coalesce(status_code::text, outcome #>> '{outcome,kind}') || coalesce(': ' || (outcome #>> '{outcome,code}'), '') AS answer,
               created_at, expires_at FROM idempotency_keys
        WHERE user_id = ${user_id} AND expires_at > now() ORDER BY created_at DESC LIMIT ${limit}`;
    },

    /** Deletes up to `limit` expired records; the reaper calls it until it returns less than the limit. */
    async purgeExpired(limit: number): Promise<number> {
      const rows = await sql`
        DELETE FROM idempotency_keys WHERE ctid IN (
          SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT ${limit})
        RETURNING 1`;
      return rows.length;
    },
  };
}

export type IdempotencyStore = ReturnType<typeof createIdempotencyStore>;
