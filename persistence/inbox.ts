import type { Queryable, Sql } from './sql.ts';

/** A bank callback as the inbox keeps it: its webhook-id, the transaction it named (if any), its body. */
export interface InboxRecord {
  webhook_id: string;
  reference: string | null;
  payload: unknown;
}

/**
 * Records callbacks unless their webhook-ids already are (a redelivery changes nothing); returns how
 * many were new. The one insert of the inbox, for the edge and for a settlement's commit.
 */
export async function insertInboxRecords(tx: Queryable, records: readonly InboxRecord[]): Promise<number> {
  if (records.length === 0) return 0;
  const rows = await tx`
    INSERT INTO webhook_inbox (webhook_id, reference, payload)
    SELECT webhook_id, reference, payload
    FROM jsonb_to_recordset(${JSON.stringify(records)}::text::jsonb)
      AS r(webhook_id text, reference uuid, payload jsonb)
    ON CONFLICT DO NOTHING RETURNING 1`;
  return rows.length;
}

/**
 * The webhook inbox: every bank callback by its webhook-id. A callback that settles a transaction is
 * recorded in the same commit as the settlement (the journal's); the others (already final, unknown)
 * here, where recording says whether it was a redelivery.
 */
export function createInbox(sql: Sql) {
  return {
    /** Records a callback; false when its webhook-id already was. */
    async record(record: InboxRecord): Promise<boolean> {
      return (await insertInboxRecords(sql, [record])) === 1;
    },
  };
}

export type Inbox = ReturnType<typeof createInbox>;
