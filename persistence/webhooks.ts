import type { IdempotencyRecord, IdempotencyStore } from './idempotency.ts';
import type { Queryable, Sql } from './sql.ts';
import type { ReadModelRow } from './transaction-row.ts';

/** A merchant's endpoint as kept; its secrets are read only by the delivery worker and the rotation. */
export interface EndpointRow {
  id: string;
  user_id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  consecutive_failures: number;
  created_at: Date;
  updated_at: Date;
}

/** One try at sending a delivery, as the log shows it. */
export interface AttemptRecord {
  at: string;
  status_code: number | null;
  error: string | null;
  latency_ms: number;
}

export interface DeliveryRow {
  id: string;
  endpoint_id: string;
  user_id: string;
  event_id: string;
  event_type: string;
  transaction_id: string;
  seq: bigint;
  created_at: Date;
  status: 'pending' | 'succeeded' | 'failed';
  round_attempts: number;
  round_started_at: Date;
  next_attempt_at: Date;
  attempts: AttemptRecord[];
  completed_at: Date | null;
}

/** A delivery claimed for an attempt: with what to send and where, and the secrets to sign it with. */
export interface ClaimedDelivery extends DeliveryRow {
  data: ReadModelRow;
  url: string;
  secrets: string[];
}

/** What a change of an endpoint came to; `key_in_use`: another request with the key recorded first. */
export type EndpointChange = { kind: 'done'; endpoint: EndpointRow } | { kind: 'not_found' } | { kind: 'key_in_use' };

export type PageAfter = { created_at: Date; id: string } | undefined;

/** Thrown inside a transaction to roll it back. */
class Rollback extends Error {}

// Arrays come back as JSON: the pool does not fetch Postgres's array types (sql.ts, fetch_types).
const ENDPOINT_COLUMNS =
  'id, user_id, url, description, to_jsonb(event_types) AS event_types, enabled, disabled_reason, consecutive_failures, created_at, updated_at';
const DELIVERY_COLUMNS =
  'id, endpoint_id, user_id, event_id, event_type, transaction_id, seq, created_at, status, round_attempts, round_started_at, next_attempt_at, attempts, completed_at';

/**
 * Merchant webhook endpoints and their deliveries. Every change a request makes commits with its
 * idempotency record; the delivery worker's claims and results are single statements or one
 * transaction each. The deliveries themselves are inserted by the journal (webhook-outbox.ts).
 */
export function createWebhookStore(sql: Sql, idempotency: Pick<IdempotencyStore, 'insert'>) {
  /**
   * Runs `change` and records its idempotency answer in one transaction; nothing is kept when the
   * change finds nothing, or when another request recorded the key first.
   */
  async function answered(
    change: (tx: Queryable) => Promise<EndpointRow | undefined>,
    answer: (endpoint: EndpointRow) => IdempotencyRecord,
  ): Promise<EndpointChange> {
    try {
      return await sql.begin(async (tx): Promise<EndpointChange> => {
        const endpoint = await change(tx);
        if (!endpoint) return { kind: 'not_found' };
        if (!(await idempotency.insert(answer(endpoint), tx))) throw new Rollback();
        return { kind: 'done', endpoint };
      });
    } catch (error) {
      if (error instanceof Rollback) return { kind: 'key_in_use' };
      throw error;
    }
  }

  const page = (after: PageAfter) => (after ? sql`(created_at, id) < (${after.created_at}, ${after.id})` : sql`TRUE`);

  return {
    /** Registers an endpoint for an active user (not_found when there is none). */
    create(
      endpoint: Pick<EndpointRow, 'id' | 'user_id' | 'url' | 'description' | 'event_types'> & { secret: string },
      answer: (endpoint: EndpointRow) => IdempotencyRecord,
    ): Promise<EndpointChange> {
      return answered(async (tx) => {
        const [row] = await tx<EndpointRow[]>`
          INSERT INTO webhook_endpoints (id, user_id, url, description, event_types, secret)
          SELECT ${endpoint.id}, id, ${endpoint.url}, ${endpoint.description},
            ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(endpoint.event_types)}::text::jsonb)), ${endpoint.secret}
          FROM users WHERE id = ${endpoint.user_id} AND revoked_at IS NULL
          RETURNING ${sql.unsafe(ENDPOINT_COLUMNS)}`;
        return row;
      }, answer);
    },

    async find(id: string): Promise<EndpointRow | undefined> {
      const [row] = await sql<
        EndpointRow[]
      >`SELECT ${sql.unsafe(ENDPOINT_COLUMNS)} FROM webhook_endpoints WHERE id = ${id}`;
      return row;
    },

    /** A page of endpoints, newest first: one user's, or everyone's (the admin). */
    async page(user_id: string | undefined, limit: number, after: PageAfter): Promise<EndpointRow[]> {
      return sql<EndpointRow[]>`
        SELECT ${sql.unsafe(ENDPOINT_COLUMNS)} FROM webhook_endpoints
        WHERE ${user_id ? sql`user_id = ${user_id}` : sql`TRUE`} AND ${page(after)}
        ORDER BY created_at DESC, id DESC LIMIT ${limit}`;
    },

    /** Deletes an endpoint and its deliveries (their log included); false when there is none. */
    async remove(id: string): Promise<boolean> {
      const rows = await sql`DELETE FROM webhook_endpoints WHERE id = ${id} RETURNING id`;
      return rows.length > 0;
    },

    /** A new signing secret; the current one keeps signing beside it until `previous_until`. */
    rotate(
      id: string,
      secret: string,
      previous_until: Date,
      answer: (endpoint: EndpointRow) => IdempotencyRecord,
    ): Promise<EndpointChange> {
      return answered(async (tx) => {
        const [row] = await tx<EndpointRow[]>`
          UPDATE webhook_endpoints
          SET previous_secret = secret, previous_expires_at = ${previous_until}, secret = ${secret}, updated_at = now()
          WHERE id = ${id} RETURNING ${sql.unsafe(ENDPOINT_COLUMNS)}`;
        return row;
      }, answer);
    },

    /** Enables an endpoint again with a fresh count of failures; its waiting deliveries go out. */
    enable(id: string, answer: (endpoint: EndpointRow) => IdempotencyRecord): Promise<EndpointChange> {
      return answered(async (tx) => {
        const [row] = await tx<EndpointRow[]>`
          UPDATE webhook_endpoints
          SET enabled = true, disabled_reason = NULL, consecutive_failures = 0, updated_at = now()
          WHERE id = ${id} RETURNING ${sql.unsafe(ENDPOINT_COLUMNS)}`;
        return row;
      }, answer);
    },

    async findDelivery(id: string): Promise<DeliveryRow | undefined> {
      const [row] = await sql<DeliveryRow[]>`
        SELECT ${sql.unsafe(DELIVERY_COLUMNS)} FROM webhook_deliveries WHERE id = ${id}`;
      return row;
    },

    /** A delivery with the change it announces (the read model's row as the journal wrote it). */
    async findDeliveryWithData(id: string): Promise<(DeliveryRow & { data: ReadModelRow }) | undefined> {
      const [row] = await sql<(DeliveryRow & { data: ReadModelRow })[]>`
        SELECT ${sql.unsafe(DELIVERY_COLUMNS)}, data FROM webhook_deliveries WHERE id = ${id}`;
      return row;
    },

    /** A page of deliveries, newest first, filtered. */
    async deliveries(
      filter: { user_id?: string; endpoint_id?: string; event_type?: string; status?: string },
      limit: number,
      after: PageAfter,
    ): Promise<DeliveryRow[]> {
      return sql<DeliveryRow[]>`
        SELECT ${sql.unsafe(DELIVERY_COLUMNS)} FROM webhook_deliveries
        WHERE ${filter.user_id ? sql`user_id = ${filter.user_id}` : sql`TRUE`}
          AND ${filter.endpoint_id ? sql`endpoint_id = ${filter.endpoint_id}` : sql`TRUE`}
          AND ${filter.event_type ? sql`event_type = ${filter.event_type}` : sql`TRUE`}
          AND ${filter.status ? sql`status = ${filter.status}` : sql`TRUE`}
          AND ${page(after)}
        ORDER BY created_at DESC, id DESC LIMIT ${limit}`;
    },

    /**
     * Deletes up to `limit` deliveries that finished (succeeded, or failed for good) more than
     * `retention_days` ago; returns how many. Their endpoints keep their counts; the journal keeps the
     * changes they announced.
     */
    async purgeFinished(limit: number, retention_days: number): Promise<number> {
      const rows = await sql`
        DELETE FROM webhook_deliveries WHERE id IN (
          SELECT id FROM webhook_deliveries
          WHERE status <> 'pending' AND completed_at < now() - make_interval(days => ${retention_days})
          LIMIT ${limit})
        RETURNING 1`;
      return rows.length;
    },

    /** Sends a delivery again now with the same event id: a new round of attempts. */
    async redeliver(
      id: string,
      answer: (delivery: DeliveryRow) => IdempotencyRecord,
    ): Promise<{ kind: 'done'; delivery: DeliveryRow } | { kind: 'not_found' } | { kind: 'key_in_use' }> {
      try {
        return await sql.begin(async (tx) => {
          const [row] = await tx<DeliveryRow[]>`
            UPDATE webhook_deliveries
            SET status = 'pending', round_attempts = 0, round_started_at = now(), next_attempt_at = now(),
              completed_at = NULL
            WHERE id = ${id} RETURNING ${sql.unsafe(DELIVERY_COLUMNS)}`;
          if (!row) return { kind: 'not_found' as const };
          if (!(await idempotency.insert(answer(row), tx))) throw new Rollback();
          return { kind: 'done' as const, delivery: row };
        });
      } catch (error) {
        if (error instanceof Rollback) return { kind: 'key_in_use' };
        throw error;
      }
    },

    /**
     * Claims up to `limit` due deliveries to enabled endpoints for `lease_ms`: each one's next attempt
     * moves past the lease, so another worker (or this one after a crash) takes it again only then. A
     * delivery waits while an earlier change of its transaction to the same endpoint is undelivered.
     * SKIP LOCKED: workers on other instances claim other rows at the same moment.
     */
    async claim(limit: number, lease_ms: number): Promise<ClaimedDelivery[]> {
      return sql<ClaimedDelivery[]>`
        WITH due AS (
          SELECT d.id FROM webhook_deliveries d
          JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
          WHERE d.status = 'pending' AND d.next_attempt_at <= now()
            AND NOT EXISTS (
              SELECT 1 FROM webhook_deliveries p
              WHERE p.endpoint_id = d.endpoint_id AND p.transaction_id = d.transaction_id
                AND p.status = 'pending' AND p.seq < d.seq)
          ORDER BY d.next_attempt_at
          LIMIT ${limit}
          FOR UPDATE OF d SKIP LOCKED)
        UPDATE webhook_deliveries d SET next_attempt_at = now() + ${lease_ms} * interval '1 millisecond'
        FROM due, webhook_endpoints e
        WHERE d.id = due.id AND e.id = d.endpoint_id
        RETURNING d.id, d.endpoint_id, d.user_id, d.event_id, d.event_type, d.transaction_id, d.seq, d.data,
          d.created_at, d.status, d.round_attempts, d.round_started_at, d.next_attempt_at, d.attempts,
          d.completed_at, e.url,
          to_jsonb(array_remove(
            ARRAY[e.secret, CASE WHEN e.previous_expires_at > now() THEN e.previous_secret END], NULL)) AS secrets`;
    },

    /** A delivery answered 2xx: done, and its endpoint's run of failures ends. */
    async succeeded(delivery: ClaimedDelivery, attempt: AttemptRecord): Promise<void> {
      await sql.begin(async (tx) => {
        await tx`
          UPDATE webhook_deliveries
          SET status = 'succeeded', completed_at = now(), round_attempts = round_attempts + 1,
            attempts = attempts || ${JSON.stringify([attempt])}::text::jsonb
          WHERE id = ${delivery.id}`;
        await tx`UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = ${delivery.endpoint_id}`;
      });
    },

    /**
     * A failed attempt: retried at `retry_at`, or failed for good when it is undefined. The endpoint's
     * run of failures grows; at `disable_after` in a row it is disabled, with the reason.
     */
    async failed(
      delivery: ClaimedDelivery,
      attempt: AttemptRecord,
      retry_at: Date | undefined,
      disable_after: number,
    ): Promise<{ disabled: boolean }> {
      return sql.begin(async (tx) => {
        await tx`
          UPDATE webhook_deliveries
          SET round_attempts = round_attempts + 1,
            attempts = attempts || ${JSON.stringify([attempt])}::text::jsonb,
            ${
              retry_at
                ? tx`next_attempt_at = ${retry_at}`
                : tx`status = 'failed', completed_at = now(), next_attempt_at = now()`
            }
          WHERE id = ${delivery.id}`;
        const last = attempt.status_code !== null ? `HTTP ${attempt.status_code}` : (attempt.error ?? 'no answer');
        const [endpoint] = await tx<{ enabled: boolean }[]>`
          UPDATE webhook_endpoints
          SET consecutive_failures = consecutive_failures + 1,
            enabled = enabled AND consecutive_failures + 1 < ${disable_after},
            disabled_reason = CASE
              WHEN enabled AND consecutive_failures + 1 >= ${disable_after}
                THEN (consecutive_failures + 1) || ' consecutive failed deliveries; the last: ' || ${last}
              ELSE disabled_reason END,
            updated_at = now()
          WHERE id = ${delivery.endpoint_id} RETURNING enabled`;
        return { disabled: endpoint !== undefined && !endpoint.enabled };
      });
    },
  };
}

export type WebhookStore = ReturnType<typeof createWebhookStore>;
