import { TRANSACTION_STATUSES, TRANSACTION_TYPES, type TransactionStatus, type TransactionType } from './account.ts';

// The events a merchant's endpoint can subscribe to: one per transaction type and status it reaches
// (`deposit.pending` … `withdrawal.failed`), the changes a user sees in the API. Attempts that failed and
// an admin's retry move no status and are not sent.

export type WebhookEventType = `${TransactionType}.${TransactionStatus}`;

/** Every event type, in a stable order (the API's enum and the README list them so). */
export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = TRANSACTION_TYPES.flatMap((type) =>
  TRANSACTION_STATUSES.map((status): WebhookEventType => `${type}.${status}`),
);

/** An endpoint subscribed to `*` receives every event type, those added later included. */
export const ALL_EVENTS = '*';

/** The status a journal event leaves its transaction in; absent for events that move no status. */
export const STATUS_AFTER_EVENT: Readonly<Record<string, TransactionStatus>> = {
  transaction_created: 'pending',
  transaction_processing: 'processing',
  transaction_succeeded: 'succeeded',
  transaction_failed: 'failed',
};
