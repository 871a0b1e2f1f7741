import type { z } from 'zod';
import { encodeCursor } from './cursor.ts';
import { errors } from './errors.ts';
import type * as shapes from './response-schemas.ts';
import type { graphqlRequest } from './graphql/routes.ts';
import type { bankCallbackBody, createApiKeyBody, createUserBody, transactionBody } from './schemas.ts';

// The values the OpenAPI document's examples are made of: one user, Ada, her deposit that succeeded,
// her withdrawal that the bank refused, and a deposit of hers whose payment gave up. Every example
// tells the same story, so an id, an amount or a time in one is the same in the next. Ids are UUIDv7
// whose time is their `created_at`; request ids are the UUIDs the gateway gives requests; amounts
// are minor units (1050 is 10.50 in a currency of two minor digits).

type Shape<T extends z.ZodType> = z.output<T>;

const ADA = '01a211fb-c978-73f8-b18b-45b8e44da37c';
const DEPOSIT = '01a211fd-4717-79bc-a44f-1fe8e23ae8dd';
const WITHDRAWAL = '01a21227-f398-7cd2-8580-387a19099eb3';
const STUCK_DEPOSIT = '01a21241-51dc-75af-a18f-97cc04d75e96';
const DEAD_LETTER = '01a2124b-919e-7daa-abfe-bcf8e2efdc1a';
const FIRST_KEY = '01a211fb-c978-7a31-9f0e-2b6d4c8e1a57';
const NEW_KEY = '01a2d5e0-7b10-7c44-8a9e-61f2b03c9d18';
const NEW_KEY_SECRET = 'pgw_Zq3vR8kLmN2pX7sT1wY5bC9dF4gH6jK0aE2iO8uQ3vM';
const DEPOSIT_BANK_REFERENCE = 'bnk_5d88b183-6d9f-4a86-8cdd-3cea3f737d73';
const WITHDRAWAL_BANK_REFERENCE = 'bnk_c1f4c753-5c81-4621-8803-abf1bc9b4255';
const INSTANCE = 'gateway-1-17';

/** The X-Request-ID of the request an example answers. */
export const SAMPLE_REQUEST_ID = 'c24ac997-2a79-4a12-9dfc-aeacad604d6e';

/** A client's Idempotency-Key: any 1 to 255 printable ASCII characters; a UUID per operation is usual. */
export const SAMPLE_IDEMPOTENCY_KEY = '801a0d70-2d84-4397-9c95-98f040a29b36';

const TIMEOUT = 'The operation was aborted due to timeout';

/** What the operations of one transaction type show: a request, its 202, the transaction later, a page. */
export interface TransactionSamples {
  request: z.input<ReturnType<typeof transactionBody>>;
  accepted: Shape<typeof shapes.transaction>;
  withEvents: Shape<typeof shapes.transactionWithEvents>;
  page: Shape<typeof shapes.transactionPage>;
}

/** Every sample the document's examples use; the currency of the transactions is the first configured. */
export function samples(currencies: readonly string[]) {
  const [currency] = currencies as [string, ...string[]];

  const user: Shape<typeof shapes.user> = {
    id: ADA,
    name: 'Ada Lovelace',
    email: 'ada@example.com',
    created_at: '2026-11-25T09:14:03.512Z',
  };
  const newUser: z.input<typeof createUserBody> = { name: user.name, email: user.email };
  const createdUser: Shape<typeof shapes.createdUser> = {
    ...user,
    api_key: 'pgw_o8pPhjY0jSJNCrLdQsSYrGvtMxAuJmAJL2mUDGDBw1g',
  };

  const newDeposit: z.input<ReturnType<typeof transactionBody>> = {
    amount: 1050,
    currency,
    description: 'Top-up',
    metadata: { order_id: 'A-1042' },
  };
  const depositAccepted: Shape<typeof shapes.transaction> = {
    id: DEPOSIT,
    type: 'deposit',
    user_id: ADA,
    amount: 1050,
    currency,
    status: 'pending',
    description: 'Top-up',
    metadata: { order_id: 'A-1042' },
    failure: null,
    bank_reference: null,
    attempts: 0,
    created_at: '2026-11-25T09:15:41.207Z',
    updated_at: '2026-11-25T09:15:41.207Z',
    completed_at: null,
  };
  const depositSucceeded: Shape<typeof shapes.transaction> = {
    ...depositAccepted,
    status: 'succeeded',
    bank_reference: DEPOSIT_BANK_REFERENCE,
    attempts: 1,
    updated_at: '2026-11-25T09:15:44.118Z',
    completed_at: '2026-11-25T09:15:44.118Z',
  };
  const depositWithEvents: Shape<typeof shapes.transactionWithEvents> = {
    ...depositSucceeded,
    events: [
      {
        seq: 1,
        type: 'transaction_created',
        status: 'pending',
        at: '2026-11-25T09:15:41.207Z',
        cause: 'api',
        request_id: SAMPLE_REQUEST_ID,
      },
      {
        seq: 2,
        type: 'transaction_processing',
        status: 'processing',
        at: '2026-11-25T09:15:41.530Z',
        cause: 'bank_response',
        request_id: null,
        bank_reference: DEPOSIT_BANK_REFERENCE,
        attempts: 1,
      },
      {
        seq: 3,
        type: 'transaction_succeeded',
        status: 'succeeded',
        at: '2026-11-25T09:15:44.118Z',
        cause: 'bank_callback',
        request_id: 'b3f19aea-fc2b-4dca-b721-1a8ff2c49b3f',
      },
    ],
  };

  const newWithdrawal: z.input<ReturnType<typeof transactionBody>> = {
    amount: 500,
    currency,
    description: 'Payout to checking account',
  };
  const withdrawalAccepted: Shape<typeof shapes.transaction> = {
    ...depositAccepted,
    id: WITHDRAWAL,
    type: 'withdrawal',
    amount: 500,
    description: 'Payout to checking account',
    metadata: null,
    created_at: '2026-11-25T10:02:17.880Z',
    updated_at: '2026-11-25T10:02:17.880Z',
  };
  const withdrawalFailed: Shape<typeof shapes.transaction> = {
    ...withdrawalAccepted,
    status: 'failed',
    failure: { code: 'insufficient_funds', message: 'The account does not hold enough funds for this debit.' },
    bank_reference: WITHDRAWAL_BANK_REFERENCE,
    attempts: 2,
    updated_at: '2026-11-25T10:02:27.650Z',
    completed_at: '2026-11-25T10:02:27.650Z',
  };
  const withdrawalWithEvents: Shape<typeof shapes.transactionWithEvents> = {
    ...withdrawalFailed,
    events: [
      {
        seq: 4,
        type: 'transaction_created',
        status: 'pending',
        at: '2026-11-25T10:02:17.880Z',
        cause: 'api',
        request_id: '515ce562-9054-4d4c-8f95-6402e237eaa0',
      },
      {
        seq: 5,
        type: 'attempt_failed',
        status: null,
        at: '2026-11-25T10:02:22.905Z',
        cause: 'bank_response',
        request_id: null,
        attempts: 1,
        error: TIMEOUT,
      },
      {
        seq: 6,
        type: 'transaction_processing',
        status: 'processing',
        at: '2026-11-25T10:02:24.411Z',
        cause: 'bank_response',
        request_id: null,
        bank_reference: WITHDRAWAL_BANK_REFERENCE,
        attempts: 2,
      },
      {
        seq: 7,
        type: 'transaction_failed',
        status: 'failed',
        at: '2026-11-25T10:02:27.650Z',
        cause: 'bank_callback',
        request_id: 'a2ad932f-687a-4e93-aa6d-1e80f90fc495',
        failure: withdrawalFailed.failure!,
      },
    ],
  };

  const deadLetter: Shape<typeof shapes.deadLetter> = {
    id: DEAD_LETTER,
    transaction_id: STUCK_DEPOSIT,
    user_id: ADA,
    reason: 'no answer from the bank after 8 attempts',
    attempts: 8,
    last_error: TIMEOUT,
    created_at: '2026-11-25T10:41:12.094Z',
    retried_at: null,
  };

  const deposit: TransactionSamples = {
    request: newDeposit,
    accepted: depositAccepted,
    withEvents: depositWithEvents,
    // Ada has older deposits: the page goes on after this one.
    page: { data: [depositSucceeded], next_cursor: pageCursor(depositSucceeded), has_more: true },
  };
  const withdrawal: TransactionSamples = {
    request: newWithdrawal,
    accepted: withdrawalAccepted,
    withEvents: withdrawalWithEvents,
    page: { data: [withdrawalFailed], next_cursor: null, has_more: false },
  };

  const bankCallback: z.input<typeof bankCallbackBody> = {
    type: 'transfer.succeeded',
    data: { reference: DEPOSIT, bank_reference: DEPOSIT_BANK_REFERENCE, status: 'succeeded' },
  };

  // Ada rotates her key: she adds one for the new deploy, then revokes the one she was given.
  const firstKey: Shape<typeof shapes.apiKey> = {
    id: FIRST_KEY,
    user_id: ADA,
    label: null,
    prefix: createdUser.api_key!.slice(0, 12),
    created_at: user.created_at,
    revoked_at: null,
  };
  const newKey: Shape<typeof shapes.apiKey> = {
    id: NEW_KEY,
    user_id: ADA,
    label: 'deploy 2026-12',
    prefix: NEW_KEY_SECRET.slice(0, 12),
    created_at: '2026-12-02T08:30:11.402Z',
    revoked_at: null,
  };
  const firstKeyRevoked = { ...firstKey, revoked_at: '2026-12-02T08:41:57.019Z' };

  const graphql = {
    request: {
      query: 'query Balance($user: ID!) { balance(userId: $user) { balances { currency available held } } }',
      variables: { user: ADA },
    },
    deposit: {
      query: 'mutation Deposit($input: TransactionInput!) { deposit(input: $input) { id status amount currency } }',
      variables: { input: { amount: newDeposit.amount, currency, description: newDeposit.description } },
    },
    answer: { data: { balance: { balances: [{ currency, available: 1050, held: 0 }] } } },
    refused: {
      data: null,
      errors: [
        {
          message: errors.idempotencyKeyRequired().message,
          extensions: {
            code: errors.idempotencyKeyRequired.code,
            status: errors.idempotencyKeyRequired.status,
            request_id: SAMPLE_REQUEST_ID,
          },
        },
      ],
    },
  } satisfies {
    request: z.input<typeof graphqlRequest>;
    deposit: z.input<typeof graphqlRequest>;
    answer: Shape<typeof shapes.graphqlAnswer>;
    refused: Shape<typeof shapes.graphqlAnswer>;
  };

  return {
    user,
    newUser,
    createdUser,
    graphql,
    users: {
      data: [{ ...user, api_keys_active: 1 }],
      next_cursor: null,
      has_more: false,
    } satisfies Shape<typeof shapes.userPage>,
    newApiKey: { label: newKey.label! } satisfies z.input<typeof createApiKeyBody>,
    createdApiKey: { ...newKey, api_key: NEW_KEY_SECRET } satisfies Shape<typeof shapes.createdApiKey>,
    apiKeys: { data: [firstKey, newKey] } satisfies Shape<typeof shapes.apiKeyList>,
    revokedApiKey: firstKeyRevoked satisfies Shape<typeof shapes.apiKey>,
    me: { ...user, kind: 'user' as const },
    deposit,
    withdrawal,
    history: {
      data: [withdrawalFailed, depositSucceeded],
      next_cursor: pageCursor(depositSucceeded),
      has_more: true,
    } satisfies Shape<typeof shapes.transactionPage>,
    balance: {
      user_id: ADA,
      balances: currencies.map((code) => ({ currency: code, available: code === currency ? 1050 : 0, held: 0 })),
    } satisfies Shape<typeof shapes.balance>,
    health: {
      status: 'ok',
      checks: { postgres: 'ok', redis: 'ok', bank: 'ok' },
    } satisfies Shape<typeof shapes.health>,
    healthFailing: {
      status: 'unavailable',
      checks: { postgres: 'unavailable', redis: 'ok', bank: 'ok' },
      error: errors.serviceUnavailable.code,
      message: errors.serviceUnavailable({ failing: 'postgres' }).message,
      request_id: SAMPLE_REQUEST_ID,
    } satisfies Shape<typeof shapes.healthUnavailable>,
    reconciliation: { ok: true, users: 1, events: 16, discrepancies: [] } satisfies Shape<
      typeof shapes.reconciliationReport
    >,
    shards: {
      instances: [
        { id: INSTANCE, url: 'http://gateway-1:3000', started_at: '2026-11-25T09:00:02.331Z', actors: { '41': 1 } },
      ],
      shards: [
        {
          shard: 40,
          owner: INSTANCE,
          epoch: '3',
          lease_expires_at: '2026-11-25T11:05:38.905Z',
          actors_alive: 0,
        },
        {
          shard: 41,
          owner: INSTANCE,
          epoch: '3',
          lease_expires_at: '2026-11-25T11:05:38.905Z',
          actors_alive: 1,
        },
      ],
    } satisfies Shape<typeof shapes.shardTable>,
    deadLetters: { data: [deadLetter], next_cursor: null, has_more: false } satisfies Shape<
      typeof shapes.deadLetterPage
    >,
    deadLetterRetried: {
      ...deadLetter,
      retried_at: '2026-11-25T11:05:33.470Z',
      status: 'retrying',
    } satisfies Shape<typeof shapes.deadLetterRetry>,
    bankCallback,
    webhookOutcome: { status: 'applied' } satisfies Shape<typeof shapes.webhookOutcome>,
    /** One server-sent event, as the stream frames a change. */
    event: `event: transaction\ndata: ${JSON.stringify(depositSucceeded)}\n\n`,
    metrics: [
      '# HELP gateway_transactions_created_total Transactions created (journaled), by type.',
      '# TYPE gateway_transactions_created_total counter',
      'gateway_transactions_created_total{type="deposit"} 2',
      'gateway_transactions_created_total{type="withdrawal"} 1',
      '',
    ].join('\n'),
    /** The start of an HTML page of the gateway's. */
    page: (title: string) =>
      `<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="utf-8" />\n    <title>${title}</title>\n`,
  };
}

/** The cursor the gateway gives after a page that ends with this transaction. */
function pageCursor(last: { created_at: string; id: string }): string {
  return encodeCursor({ created_at: new Date(last.created_at), id: last.id });
}
