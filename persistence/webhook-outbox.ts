import { STATUS_AFTER_EVENT } from '../engine/webhook-events.ts';
import type { Append } from './journal.ts';
import type { Queryable } from './sql.ts';
import type { ReadModelRow } from './transaction-row.ts';

/** A transaction's change of status, as the outbox statement reads it. */
interface StatusChange {
  user_id: string;
  seq: number;
  transaction_id: string;
  event_type: string;
  /** The transaction as it stood after the change. */
  data: ReadModelRow;
  at: string;
}

/**
 * The status changes of a batch's appends, each with its transaction as the change left it. An append
 * carries each transaction's last state; an earlier change of the same transaction in the same append
 * (processing, then succeeded) is that state at its own status, not yet final.
 */
export function statusChanges(appends: readonly Append[]): StatusChange[] {
  const changes: StatusChange[] = [];
  for (const append of appends) {
    const rows = new Map(append.rows.map((row) => [row.id, row]));
    const lastSeq = new Map<string, number>();
    append.events.forEach((event, i) => {
      if (event.transaction_id && STATUS_AFTER_EVENT[event.type]) lastSeq.set(event.transaction_id, i);
    });
    append.events.forEach((event, i) => {
      const status = STATUS_AFTER_EVENT[event.type];
      const row = event.transaction_id ? rows.get(event.transaction_id) : undefined;
      if (!status || !row) return;
      const data: ReadModelRow =
        lastSeq.get(row.id) === i
          ? row
          : { ...row, status, updated_at: event.at, completed_at: null, failure_code: null, failure_message: null };
      const seq = append.first_seq + i;
      changes.push({
        user_id: append.user_id,
        seq,
        transaction_id: row.id,
        event_type: `${row.type}.${status}`,
        data,
        at: event.at,
      });
    });
  }
  return changes;
}

/**
 * Which of the batch's users have an enabled endpoint: asked in the same round trip as the journal's
 * epoch check, so that a batch whose users have none (the usual case) sends no outbox statement and
 * serialises none of its transactions for it.
 */
export async function usersWithEndpoints(tx: Queryable, appends: readonly Append[]): Promise<Set<string>> {
  const users = [...new Set(appends.map((append) => append.user_id))];
  const rows = await tx<{ user_id: string }[]>`
    SELECT DISTINCT user_id FROM webhook_endpoints
    WHERE enabled AND user_id IN (SELECT value::uuid FROM jsonb_array_elements_text(${JSON.stringify(users)}::text::jsonb))`;
  return new Set(rows.map((row) => row.user_id));
}

/**
 * Inside the journal's transaction: one delivery per (enabled endpoint of the change's user subscribed to
 * its type) × status change. One statement; when no user of the batch has an endpoint, the join on the
 * endpoints' partial index by user finds nothing and nothing is written. The event id is derived from
 * the change's place in the journal, so it is the same for every endpoint and every attempt.
 */
export async function insertOutbox(tx: Queryable, appends: readonly Append[]): Promise<void> {
  const changes = statusChanges(appends);
  if (changes.length === 0) return;
  await tx`
    INSERT INTO webhook_deliveries (endpoint_id, user_id, event_id, event_type, transaction_id, seq, data, created_at)
    SELECT e.id, c.user_id, 'evt_' || md5(c.user_id::text || '.' || c.seq), c.event_type, c.transaction_id, c.seq,
      c.data, c.at
    FROM jsonb_to_recordset(${JSON.stringify(changes)}::text::jsonb)
      AS c(user_id uuid, seq bigint, transaction_id uuid, event_type text, data jsonb, at timestamptz)
    JOIN webhook_endpoints e ON e.user_id = c.user_id AND e.enabled
      AND (c.event_type = ANY (e.event_types) OR '*' = ANY (e.event_types))`;
}
