import type { Sql } from './sql.ts';

/** The webhook inbox: every bank callback applied, by its webhook-id, so a redelivery is a no-op. */
export function createInbox(sql: Sql) {
  return {
    async seen(webhook_id: string): Promise<boolean> {
      const rows = await sql`SELECT 1 FROM webhook_inbox WHERE webhook_id = ${webhook_id}`;
      return rows.length > 0;
    },

    /** Records a callback as applied; false when it already was. */
    async record(webhook_id: string, reference: string | null, payload: unknown): Promise<boolean> {
      const rows = await sql`
        INSERT INTO webhook_inbox (webhook_id, reference, payload)
        VALUES (${webhook_id}, ${reference}, ${JSON.stringify(payload)}::text::jsonb)
        ON CONFLICT DO NOTHING RETURNING 1`;
      return rows.length === 1;
    },
  };
}

export type Inbox = ReturnType<typeof createInbox>;
