import { z } from 'zod';
import { CAUSES, TRANSACTION_STATUSES, TRANSACTION_TYPES, type Event } from '../engine/account.ts';
import type { Assert, Same } from '../engine/same-type.ts';
import { errors } from './errors.ts';
import { amount, uuid } from './schemas.ts';
import { page } from './page-schema.ts';
import type { TransactionJson } from './transaction-json.ts';

// The shapes the API answers with, for the OpenAPI document and for tests that hold real answers
// against it. `id` in `.meta()` names a schema under `components/schemas`. Objects are not strict:
// a client must tolerate fields added later, so the document does not forbid them.

export const dateTime = z.iso.datetime({ offset: true });
const currencyCode = z
  .string()
  .regex(/^[A-Z]{3}$/)
  .meta({ description: 'ISO 4217 code.' });

// Checked against the engine's union, so that an event type added to the engine fails to compile here
// instead of going undocumented (the statuses, types and causes are the engine's own arrays).
const eventTypes = {
  transaction_created: 'transaction_created',
  transaction_processing: 'transaction_processing',
  attempt_failed: 'attempt_failed',
  retry_requested: 'retry_requested',
  transaction_succeeded: 'transaction_succeeded',
  transaction_failed: 'transaction_failed',
} as const satisfies { [K in Event['type']]: K };

/** The contract's error body, the one shape of every error but the 429. */
export const errorBody = z
  .object({
    error: z.string().meta({ description: 'A snake_case code, stable for programs.' }),
    message: z.string().meta({ description: 'For people; may change.' }),
    details: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .meta({ description: 'What is wrong with each field (validation_error only).' }),
    request_id: z.string().meta({ description: 'The X-Request-ID of the request, for support.' }),
  })
  .meta({ id: 'Error' });

/** The 429 body: the error shape with the seconds to wait. */
export const rateLimitBody = z
  .object({
    error: z.literal(errors.rateLimitExceeded.code),
    message: z.string(),
    retry_after: z.number().int().min(1).meta({ description: 'Seconds until the limit resets.' }),
    request_id: z.string(),
  })
  .meta({ id: 'RateLimitExceeded' });

/** A user as anyone may see it: never the key. */
export const user = z
  .object({ id: uuid, name: z.string(), email: z.email(), created_at: dateTime })
  .meta({ id: 'User' });

/** The answer to `POST /users`: the user with its API key, shown this once. */
export const createdUser = user
  .extend({
    api_key: z.string().nullable().meta({
      description: 'The API key, shown once; null in a replay with the same Idempotency-Key.',
    }),
  })
  .meta({ id: 'CreatedUser' });

// Not a named component: zod-to-openapi 9 drops `null` from a nullable reference to one.
const failure = z
  .object({ code: z.string(), message: z.string() })
  .meta({ description: 'Why the bank or the gateway failed the transaction.' });

/** The contract's transaction object. */
export const transaction = z
  .object({
    id: uuid.meta({ description: 'UUIDv7, time-ordered.' }),
    type: z.enum(TRANSACTION_TYPES),
    user_id: uuid,
    amount,
    currency: currencyCode,
    status: z.enum(TRANSACTION_STATUSES),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.string()).nullable(),
    failure: failure.nullable(),
    bank_reference: z.string().nullable(),
    attempts: z.number().int().min(0).meta({ description: 'Requests made to the bank so far.' }),
    created_at: dateTime,
    updated_at: dateTime,
    completed_at: dateTime.nullable(),
  })
  .meta({ id: 'Transaction' });
// What `transactionJson` sends, field for field: a field added to one alone fails to compile here.
type _TransactionDocumented = Assert<Same<z.output<typeof transaction>, TransactionJson>>;

/** One entry of a transaction's audit trail. */
export const transactionEvent = z
  .object({
    seq: z.number().int().min(1).meta({ description: "Position in the account's journal." }),
    type: z.enum(eventTypes),
    status: z.enum(TRANSACTION_STATUSES).nullable().meta({ description: 'The status this event led to, if any.' }),
    at: dateTime,
    cause: z.enum(CAUSES),
    request_id: z.string().nullable().meta({ description: 'The request that caused it, when one did.' }),
    bank_reference: z.string().optional(),
    attempts: z.number().int().min(0).optional(),
    failure: failure.optional(),
    error: z.string().optional().meta({ description: 'Why an attempt at the bank failed.' }),
  })
  .meta({ id: 'TransactionEvent' });

/** A transaction with its audit trail, as `GET /deposits/{id}` answers. */
export const transactionWithEvents = transaction
  .extend({ events: z.array(transactionEvent) })
  .meta({ id: 'TransactionWithEvents' });

export const transactionPage = page(transaction, 'TransactionPage');

/** A GraphQL answer: data (null when refused as a whole), and the errors, each with the catalogue's code. */
export const graphqlAnswer = z
  .object({
    data: z.record(z.string(), z.unknown()).nullable().optional(),
    errors: z
      .array(
        z.object({
          message: z.string(),
          path: z.array(z.union([z.string(), z.number()])).optional(),
          extensions: z
            .object({ code: z.string(), status: z.number().int(), request_id: z.string() })
            .catchall(z.unknown()),
        }),
      )
      .optional(),
  })
  .meta({ id: 'GraphqlAnswer' });

/** A user in the admin's list, with how many of its keys authenticate now. */
export const listedUser = user
  .extend({ api_keys_active: z.number().int().min(0).meta({ description: 'Keys not revoked.' }) })
  .meta({ id: 'ListedUser' });

export const userPage = page(listedUser, 'UserPage');

/** An API key as the API shows it: never the key itself after its creation. */
export const apiKey = z
  .object({
    id: uuid,
    user_id: uuid,
    label: z.string().nullable(),
    prefix: z.string().nullable().meta({
      description: "The key's first 12 characters, to tell keys apart; null for keys issued before keys had ids.",
    }),
    created_at: dateTime,
    revoked_at: dateTime.nullable(),
  })
  .meta({ id: 'ApiKey' });

/** The answer to adding a key: the key, shown this once. */
export const createdApiKey = apiKey
  .extend({
    api_key: z.string().nullable().meta({
      description: 'The new key, shown once; null in a replay with the same Idempotency-Key.',
    }),
  })
  .meta({ id: 'CreatedApiKey' });

export const apiKeyList = z.object({ data: z.array(apiKey) }).meta({ id: 'ApiKeyList' });

/** A user's balances: one entry per configured currency, and any other the account holds. */
export const balance = z
  .object({
    user_id: uuid,
    balances: z.array(
      z.object({
        currency: currencyCode,
        available: z.number().int().min(0).meta({ description: 'Minor units that may be withdrawn.' }),
        held: z.number().int().min(0).meta({ description: 'Minor units held by withdrawals in progress.' }),
      }),
    ),
  })
  .meta({ id: 'Balance' });

const checkResult = z.enum(['ok', 'unavailable', 'circuit_open']);

/** `GET /health` when Postgres and Redis answer (`degraded`: the bank does not, and payments wait). */
export const health = z
  .object({ status: z.enum(['ok', 'degraded']), checks: z.record(z.string(), checkResult) })
  .meta({ id: 'Health' });

/** `GET /health` when a dependency does not: the checks with the error shape beside them. */
export const healthUnavailable = z
  .object({
    status: z.literal('unavailable'),
    checks: z.record(z.string(), checkResult),
    error: z.literal(errors.serviceUnavailable.code),
    message: z.string(),
    request_id: z.string(),
  })
  .meta({ id: 'HealthUnavailable' });

/** The answer of `GET /admin/reconciliation`. */
export const reconciliationReport = z
  .object({
    ok: z.boolean().meta({ description: 'True when no discrepancy was found.' }),
    users: z.number().int().min(0),
    events: z.number().int().min(0),
    discrepancies: z.array(
      z.object({
        user_id: uuid,
        currency: z.string(),
        check: z.string(),
        journal: z.string().meta({ description: 'The value the journal gives, in minor units or a count.' }),
        other: z.string().meta({ description: 'The value of the view compared with it.' }),
      }),
    ),
  })
  .meta({ id: 'ReconciliationReport' });

/** The answer of `GET /admin/shards`: the live instances and every shard's lease. */
export const shardTable = z
  .object({
    instances: z.array(
      z.object({
        id: z.string(),
        url: z.string().meta({ description: 'Where the other instances forward requests to it.' }),
        started_at: dateTime,
        actors: z.record(z.string(), z.number().int().min(0)).meta({ description: 'Live actors per shard.' }),
      }),
    ),
    shards: z.array(
      z.object({
        shard: z.number().int().min(0),
        owner: z.string().nullable().meta({ description: 'The instance holding the lease; null while none does.' }),
        epoch: z.string().meta({ description: 'The fencing epoch every append for this shard must carry.' }),
        lease_expires_at: dateTime.nullable(),
        actors_alive: z.number().int().min(0).nullable(),
      }),
    ),
  })
  .meta({ id: 'ShardTable' });

/** A payment that gave up after its last attempt, waiting for an admin (`dead_letters` table). */
export const deadLetter = z
  .object({
    id: uuid,
    transaction_id: uuid,
    user_id: uuid,
    reason: z.string(),
    attempts: z.number().int().min(0),
    last_error: z.string().nullable(),
    created_at: dateTime,
    retried_at: dateTime.nullable(),
  })
  .meta({ id: 'DeadLetter' });

export const deadLetterPage = page(deadLetter, 'DeadLetterPage');

/** The answer to a dead letter's retry: the letter, now retried, and the payment running again. */
export const deadLetterRetry = deadLetter.extend({ status: z.literal('retrying') }).meta({ id: 'DeadLetterRetry' });

/** What became of a bank callback; every outcome is a 200, so that the bank stops redelivering. */
export const webhookOutcome = z
  .object({
    status: z.enum(['applied', 'already_final', 'duplicate', 'ignored']).meta({
      description:
        '`applied`: the transaction settled; `already_final`: it had settled before (no change); ' +
        '`duplicate`: this webhook-id was applied before; `ignored`: no such transaction, or not a final result.',
    }),
  })
  .meta({ id: 'WebhookOutcome' });
