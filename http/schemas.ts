import { z } from 'zod';
import { TRANSACTION_STATUSES, TRANSACTION_TYPES } from '../engine/account.ts';
import { AMOUNT_MAX } from '../engine/money.ts';
import { ALL_EVENTS, WEBHOOK_EVENT_TYPES } from '../engine/webhook-events.ts';

/** Request and response shapes of the API; the OpenAPI document is generated from these. */
export const uuid = z.uuid({ message: 'must be a UUID' });

/**
 * Whether Postgres can store a string as it is: `text` and `jsonb` refuse U+0000, `jsonb` refuses an
 * unpaired UTF-16 surrogate, and a `text` column would silently get U+FFFD in its place.
 */
export function storableText(value: string): boolean {
  return !value.includes('\u0000') && value.isWellFormed();
}

const UNSTORABLE = 'must not contain U+0000 or an unpaired UTF-16 surrogate';

/** A string Postgres can store: every string field that reaches storage is made from this. */
export const text = () => z.string().refine(storableText, UNSTORABLE);

export const createUserBody = z.strictObject({
  name: text().trim().min(1).max(200),
  email: z.email().max(320).refine(storableText, UNSTORABLE),
});

export const userIdParams = z.strictObject({ user_id: uuid });

/** The body of POST /users/{user_id}/api-keys (may be empty). */
export const createApiKeyBody = z.strictObject({
  label: text()
    .trim()
    .min(1)
    .max(100)
    .optional()
    .meta({ description: 'A name to tell the key apart, e.g. where it is used.' }),
});

export const apiKeyParams = z.strictObject({ user_id: uuid, key_id: uuid });

/** Amounts on the wire: a JSON integer of minor units, 1 to 1e12. Strings and fractions are refused. */
export const amount = z
  .number({ message: 'must be a JSON number of minor units (e.g. 1050 for 10.50)' })
  .int('must be a whole number of minor units')
  .positive('must be greater than zero')
  .max(Number(AMOUNT_MAX), `must be at most ${AMOUNT_MAX}`)
  .meta({ description: 'Minor units of the currency (1050 is 10.50 USD): a JSON integer from 1 to 10^12.' });

/** Keys that reach an object's prototype when a consumer copies the metadata into a plain object. */
const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype'];

/**
 * Refuses reserved keys in the raw input: `JSON.parse` makes `__proto__` an own property, which zod's
 * record skips without a word, so it must be caught before the record sees the object.
 */
function refuseReservedKeys(value: unknown, ctx: z.core.$RefinementCtx): unknown {
  if (value === null || typeof value !== 'object') return value;
  for (const key of RESERVED_KEYS) {
    if (Object.hasOwn(value, key)) {
      ctx.addIssue({
        code: 'custom',
        input: value,
        path: [key],
        message: `is a reserved key (${RESERVED_KEYS.join(', ')})`,
      });
    }
  }
  return value;
}

const metadata = z.preprocess(
  refuseReservedKeys,
  z
    .record(text().min(1).max(40), text().max(500), {
      // The record's own message for a bad key says only that it is bad; say what is wrong with it.
      error: (issue) =>
        issue.code === 'invalid_key' ? `key ${issue.issues.map((inner) => inner.message).join('; ')}` : undefined,
    })
    .refine((value) => Object.keys(value).length <= 20, 'at most 20 keys')
    .meta({
      description:
        'Your own string pairs, kept with the transaction: at most 20 keys of 1 to 40 characters ' +
        '(not `__proto__`, `constructor` or `prototype`), values of at most 500.',
      maxProperties: 20,
      propertyNames: { minLength: 1, maxLength: 40, not: { enum: RESERVED_KEYS } },
    }),
);

/** The body of POST /deposits and /withdrawals, for the configured currencies. */
export function transactionBody(currencies: readonly string[]) {
  return z.strictObject({
    amount,
    currency: z.enum(currencies as [string, ...string[]], { message: `must be one of ${currencies.join(', ')}` }),
    user_id: uuid.optional(),
    description: text().max(500).optional(),
    metadata: metadata.optional(),
  });
}

const queryAmount = z
  .string()
  .regex(/^\d{1,13}$/, 'must be a whole number of minor units')
  .transform((value) => BigInt(value))
  .refine((value) => value <= AMOUNT_MAX, `must be at most ${AMOUNT_MAX}`);

/** The most items one page holds. */
export const PAGE_LIMIT_MAX = 100;

/** The items of a page whose request names no `limit`. */
export const PAGE_LIMIT_DEFAULT = 20;

const PAGE_LIMIT_RULE = `must be an integer from 1 to ${PAGE_LIMIT_MAX}`;

const pageQuery = {
  limit: z
    .string()
    .regex(/^\d{1,3}$/, PAGE_LIMIT_RULE)
    .transform(Number)
    .refine((value) => value >= 1 && value <= PAGE_LIMIT_MAX, PAGE_LIMIT_RULE)
    .optional()
    .meta({ description: `Page size, 1 to ${PAGE_LIMIT_MAX}; ${PAGE_LIMIT_DEFAULT} when absent.` }),
  cursor: z
    .string()
    .max(200)
    .optional()
    .meta({ description: 'The `next_cursor` of the previous page; absent for the first page.' }),
};

// Postgres reads an instant as `toISOString` writes it only for UTC years 1 to 9999: year 0 and the
// six-digit years fail the query, so an instant outside is refused here as a 400 rather than a 500.
const INSTANT_MIN_MS = Date.parse('0001-01-01T00:00:00.000Z');
const INSTANT_MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');

/** Whether an instant (ms since the epoch, NaN for none) lies where Postgres can compare it. */
export function storableInstant(ms: number): boolean {
  return ms >= INSTANT_MIN_MS && ms <= INSTANT_MAX_MS;
}

const filters = {
  status: z.enum(TRANSACTION_STATUSES).optional(),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code')
    .optional(),
  created_from: z.iso
    .datetime({ offset: true, message: 'must be an ISO 8601 date-time' })
    .refine((value) => storableInstant(Date.parse(value)), 'must lie between the years 1 and 9999 (UTC)')
    .optional()
    .meta({ description: 'Created at or after this instant.' }),
  created_to: z.iso
    .datetime({ offset: true, message: 'must be an ISO 8601 date-time' })
    .refine((value) => storableInstant(Date.parse(value)), 'must lie between the years 1 and 9999 (UTC)')
    .optional()
    .meta({ description: 'Created at or before this instant.' }),
  min_amount: queryAmount.optional().meta({ description: 'At least this many minor units.' }),
  max_amount: queryAmount.optional().meta({ description: 'At most this many minor units.' }),
};

/** Query of GET /deposits and /withdrawals. */
export const typedListQuery = z.strictObject({ ...pageQuery, ...filters, user_id: uuid.optional() });

/** Query of GET /events: the admin may name one user (else every user's changes); a user only themselves. */
export const eventsQuery = z.strictObject({ user_id: uuid.optional() });

/** Query of GET /transactions: every user's for the admin (or the one named), the caller's own for a user. */
export const transactionListQuery = z.strictObject({
  ...pageQuery,
  ...filters,
  type: z.enum(TRANSACTION_TYPES).optional(),
  user_id: uuid.optional(),
});

/** Query of GET /users/{user_id}/transactions. */
export const historyQuery = z.strictObject({
  ...pageQuery,
  ...filters,
  type: z.enum(TRANSACTION_TYPES).optional(),
});

export const transactionIdParams = z.strictObject({ id: uuid });

/** Query of GET /users (admin): a page, newest first, optionally searched. */
export const userListQuery = z.strictObject({
  search: text()
    .trim()
    .max(320)
    .optional()
    .meta({ description: 'A user id (exact), or text found in the name or the email (case-insensitive).' }),
  ...pageQuery,
});

/** Query of GET /admin/dead-letters: a page, newest first. */
export const deadLetterListQuery = z.strictObject({ ...pageQuery });

/** The body of the bank's callback (Standard Webhooks payload: extra fields such as `timestamp` pass). */
export const bankCallbackBody = z.object({
  type: z.enum(['transfer.succeeded', 'transfer.failed']),
  data: z.object({
    reference: uuid.meta({ description: 'Our transaction id, as sent to the bank.' }),
    bank_reference: text().min(1).max(100),
    status: z.enum(['processing', 'succeeded', 'failed']),
    failure_code: text().max(100).optional(),
    failure_message: text().max(500).optional(),
  }),
});

/** The callback's `webhook-id`, checked once the signature is: the inbox keeps it (at most 255 characters). */
export const bankCallbackHeaders = z.object({ 'webhook-id': text().min(1).max(255) });

export const deadLetterParams = z.strictObject({ id: uuid });

/** A merchant webhook event type: `deposit.pending` … `withdrawal.failed`. */
const webhookEventType = z.enum(WEBHOOK_EVENT_TYPES as [string, ...string[]]);

/** The body of POST /webhook-endpoints: where to send which events (the admin names the user). */
export const createWebhookEndpointBody = z.strictObject({
  url: text().min(1).max(2048).meta({
    description: 'Where to POST the events: `https`, on a public address.',
    example: 'https://shop.example/hooks',
  }),
  event_types: z
    .array(z.union([webhookEventType, z.literal(ALL_EVENTS)]))
    .min(1)
    .max(20)
    .refine((types) => new Set(types).size === types.length, 'must not repeat a type')
    .meta({ description: 'The event types to receive, or `["*"]` for all.' }),
  description: text().max(500).optional(),
  user_id: uuid.optional().meta({ description: 'The admin only: whose endpoint this is.' }),
});

export const webhookEndpointParams = z.strictObject({ id: uuid });

/** Query of GET /webhook-endpoints: a page, newest first (the admin: everyone's, or `user_id`'s). */
export const webhookEndpointListQuery = z.strictObject({ ...pageQuery, user_id: uuid.optional() });

/** Query of GET /webhook-deliveries: a page, newest first, filtered. */
export const webhookDeliveryListQuery = z.strictObject({
  ...pageQuery,
  endpoint_id: uuid.optional(),
  event_type: webhookEventType.optional(),
  status: z.enum(['pending', 'succeeded', 'failed']).optional(),
  user_id: uuid.optional(),
});
