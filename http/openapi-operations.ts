import type { ResponseConfig, RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import type { TransactionType } from '../engine/account.ts';
import { ACTOR_REFUSAL_CODES, rejectionCode, type ErrorCode } from './errors.ts';
import { samples, type TransactionSamples } from './openapi-samples.ts';
import { webhookOperations } from './openapi-webhooks.ts';
import { graphqlRequest } from './graphql/routes.ts';
import {
  apiKey,
  apiKeyList,
  balance,
  createdApiKey,
  createdUser,
  deadLetterPage,
  graphqlAnswer,
  deadLetterRetry,
  health,
  healthUnavailable,
  reconciliationReport,
  shardTable,
  transaction,
  transactionPage,
  transactionWithEvents,
  user,
  userPage,
  webhookOutcome,
} from './response-schemas.ts';
import {
  apiKeyParams,
  bankCallbackBody,
  createApiKeyBody,
  createUserBody,
  deadLetterListQuery,
  deadLetterParams,
  eventsQuery,
  historyQuery,
  transactionBody,
  transactionIdParams,
  transactionListQuery,
  typedListQuery,
  userIdParams,
  userListQuery,
} from './schemas.ts';

/** Who may call an operation, which decides its security requirement. */
export type Access = 'anyone' | 'caller' | 'admin' | 'bank' | 'metrics';

/** One operation of the API, in the terms `openapi.ts` builds the document from. */
export interface Operation {
  method: 'get' | 'post' | 'delete';
  /** OpenAPI path syntax: `{param}`. */
  path: string;
  operationId: string;
  tag: string;
  summary: string;
  description?: string;
  access: Access;
  request?: RouteConfig['request'];
  /** The answers that are not errors, by status. */
  answers: Record<number, ResponseConfig>;
  /**
   * Error codes beside those the edge adds by path, method and access (see `openapi.ts`); their statuses
   * and meanings come from the catalogue (http/errors.ts).
   */
  errors?: readonly ErrorCode[];
  /** What its 404 says does not exist, in the example of that answer; `user` when not given. */
  missing?: string;
  /**
   * Answers its errors in GraphQL's shape (`{errors: [{message, extensions: {code, status,
   * request_id}}]}`, codes from the same catalogue), which its own answers document, not the REST body.
   */
  graphql?: boolean;
}

/** A JSON response of one schema, with what a caller would receive. */
export function json<T extends z.ZodType>(schema: T, description: string, example: z.output<T>): ResponseConfig {
  return { description, content: { 'application/json': { schema, example } } };
}

/** A response that is not JSON: a page, a file, a stream; its example is the text it starts with. */
function text(type: string, description: string, example: string): ResponseConfig {
  return { description, content: { [type]: { schema: z.string(), example } } };
}

/** A named example of a request body: Swagger UI offers each by its summary, the first filled in. */
interface BodyExample<T> {
  summary: string;
  value: T;
}

function jsonBody<T extends z.ZodType>(
  schema: T,
  examples: Record<string, BodyExample<z.input<T>>>,
): NonNullable<RouteConfig['request']>['body'] {
  return { required: true, content: { 'application/json': { schema, examples } } };
}

const LISTED = 'A page, newest first; follow `next_cursor` for the next one.';

/** Deposits and withdrawals share their routes but for the refusals each can meet. */
function transactionOperations(
  type: TransactionType,
  body: ReturnType<typeof transactionBody>,
  sample: TransactionSamples,
): Operation[] {
  const Noun = type === 'deposit' ? 'Deposit' : 'Withdrawal';
  const plural = `${type}s`;
  const tag = `${Noun}s`;
  const refusal = rejectionCode(type === 'deposit' ? 'balance_limit_exceeded' : 'insufficient_funds');
  return [
    {
      method: 'post',
      path: `/api/v1/${plural}`,
      operationId: `create${Noun}`,
      tag,
      summary: `Start a ${type}`,
      description:
        (type === 'withdrawal' ? 'The amount is held from the available balance at once. ' : '') +
        'The transaction is `pending` until the bank answers; poll it by id. A user acts for themselves; ' +
        'the admin names the user in `user_id`.',
      access: 'caller',
      request: {
        body: jsonBody(body, {
          user: { summary: `A user's own ${type}`, value: sample.request },
          admin: { summary: `The admin, for a user`, value: { ...sample.request, user_id: sample.accepted.user_id } },
        }),
      },
      answers: { 202: json(transaction, 'Accepted; the bank has not answered yet.', sample.accepted) },
      errors: ['validation_error', 'not_found', rejectionCode('transaction_exists'), refusal, ...ACTOR_REFUSAL_CODES],
    },
    {
      method: 'get',
      path: `/api/v1/${plural}/{id}`,
      operationId: `get${Noun}`,
      tag,
      summary: `A ${type}, with its audit trail`,
      access: 'caller',
      request: { params: transactionIdParams },
      answers: { 200: json(transactionWithEvents, `The ${type} and the events that made it.`, sample.withEvents) },
      missing: type,
      errors: ['validation_error', 'not_found'],
    },
    {
      method: 'get',
      path: `/api/v1/${plural}`,
      operationId: `list${Noun}s`,
      tag,
      summary: `List ${plural}`,
      description: `A user sees their own; the admin sees all, or one user's with \`user_id\`. ${LISTED}`,
      access: 'caller',
      request: { query: typedListQuery },
      answers: { 200: json(transactionPage, `A page of ${plural}.`, sample.page) },
      errors: ['validation_error', 'invalid_cursor', 'not_found'],
    },
  ];
}

/** Every operation the gateway serves, and those the contract announces that are still being built. */
export function operations(currencies: readonly string[]): Operation[] {
  const newTransaction = transactionBody(currencies).meta({ id: 'TransactionRequest' });
  const sample = samples(currencies);
  return [
    {
      method: 'get',
      path: '/health',
      operationId: 'health',
      tag: 'Operations',
      summary: 'Whether the gateway and its dependencies answer',
      access: 'anyone',
      answers: {
        200: json(
          health,
          'Postgres and Redis answer. `degraded` when the bank does not answer or its circuit is open: ' +
            'deposits and withdrawals are still taken, and their payments wait.',
          sample.health,
        ),
        503: json(
          healthUnavailable,
          'Postgres or Redis failed or timed out; `checks` names every failing check.',
          sample.healthFailing,
        ),
      },
    },
    {
      method: 'post',
      path: '/api/v1/users',
      operationId: 'createUser',
      tag: 'Users',
      summary: 'Create a user and their API key',
      access: 'admin',
      request: {
        body: jsonBody(createUserBody.meta({ id: 'CreateUserRequest' }), {
          user: { summary: 'A new user', value: sample.newUser },
        }),
      },
      answers: { 201: json(createdUser, 'Created; `api_key` is shown this once.', sample.createdUser) },
      errors: ['email_taken'],
    },
    {
      method: 'get',
      path: '/api/v1/users',
      operationId: 'listUsers',
      tag: 'Users',
      summary: 'Find users by id, name or email',
      description: `${LISTED} \`search\` is a user id (exact match) or text found in the name or the email.`,
      access: 'admin',
      request: { query: userListQuery },
      answers: { 200: json(userPage, 'A page of users.', sample.users) },
      errors: ['validation_error', 'invalid_cursor'],
    },
    {
      method: 'get',
      path: '/api/v1/users/{user_id}/api-keys',
      operationId: 'listApiKeys',
      tag: 'API keys',
      summary: "A user's API keys, active and revoked",
      description: 'Never the keys themselves: each shows its first 12 characters.',
      access: 'caller',
      request: { params: userIdParams },
      answers: { 200: json(apiKeyList, 'The keys, oldest first.', sample.apiKeys) },
      errors: ['validation_error', 'not_found'],
    },
    {
      method: 'post',
      path: '/api/v1/users/{user_id}/api-keys',
      operationId: 'createApiKey',
      tag: 'API keys',
      summary: 'Add an API key (to rotate: add, switch over, revoke the old one)',
      description:
        'A user holds at most two active keys, so that a client can switch to a new key before the old ' +
        'one stops working. The body may be left out.',
      access: 'caller',
      request: {
        params: userIdParams,
        body: {
          required: false,
          content: {
            'application/json': {
              schema: createApiKeyBody,
              examples: { labelled: { summary: 'a key named after where it is used', value: sample.newApiKey } },
            },
          },
        },
      },
      answers: { 201: json(createdApiKey, 'Added; `api_key` is shown this once.', sample.createdApiKey) },
      errors: ['validation_error', 'not_found', 'too_many_api_keys'],
    },
    {
      method: 'post',
      path: '/api/v1/users/{user_id}/api-keys/{key_id}/revoke',
      operationId: 'revokeApiKey',
      tag: 'API keys',
      summary: 'Revoke an API key',
      description:
        'The key stops authenticating on the instance that answers at once, and on every other within ' +
        '`AUTH_CACHE_TTL_MS` (5 s by default). Revoking a revoked key answers it unchanged.',
      access: 'caller',
      request: { params: apiKeyParams },
      answers: { 200: json(apiKey, 'The key, revoked.', sample.revokedApiKey) },
      errors: ['validation_error', 'not_found'],
      missing: 'API key',
    },
    {
      method: 'get',
      path: '/api/v1/users/{user_id}',
      operationId: 'getUser',
      tag: 'Users',
      summary: 'A user, without the key',
      access: 'caller',
      request: { params: userIdParams },
      answers: { 200: json(user, 'The user.', sample.user) },
      errors: ['validation_error', 'not_found'],
    },
    {
      method: 'get',
      path: '/api/v1/users/{user_id}/balance',
      operationId: 'getBalance',
      tag: 'Balances and history',
      summary: "A user's balances, from the live account",
      description: 'One entry per configured currency, and any other the account holds. Rate limited per caller.',
      access: 'caller',
      request: { params: userIdParams },
      answers: { 200: json(balance, 'The balances.', sample.balance) },
      errors: ['validation_error', 'not_found', ...ACTOR_REFUSAL_CODES],
    },
    {
      method: 'get',
      path: '/api/v1/users/{user_id}/transactions',
      operationId: 'listUserTransactions',
      tag: 'Balances and history',
      summary: "A user's deposits and withdrawals",
      description: `${LISTED} Rate limited per caller, together with the deposit and withdrawal lists.`,
      access: 'caller',
      request: { params: userIdParams, query: historyQuery },
      answers: { 200: json(transactionPage, 'A page of transactions.', sample.history) },
      errors: ['validation_error', 'invalid_cursor', 'not_found'],
    },
    {
      method: 'get',
      path: '/api/v1/transactions',
      operationId: 'listTransactions',
      tag: 'Balances and history',
      summary: "Deposits and withdrawals: every user's for the admin, your own for a user",
      description: `${LISTED} The admin may name a \`user_id\`; a user naming another gets 404. Rate limited per caller, together with the other lists.`,
      access: 'caller',
      request: { query: transactionListQuery },
      answers: { 200: json(transactionPage, 'A page of transactions.', sample.history) },
      errors: ['validation_error', 'invalid_cursor', 'not_found'],
    },
    ...transactionOperations('deposit', newTransaction, sample.deposit),
    ...transactionOperations('withdrawal', newTransaction, sample.withdrawal),
    {
      method: 'get',
      path: '/api/v1/events',
      operationId: 'streamEvents',
      tag: 'Events',
      summary: 'Server-sent events about transactions',
      description:
        "A `text/event-stream` of changes to the caller's transactions (the admin's: everyone's); " +
        "each event's `data` is a JSON Transaction.",
      access: 'caller',
      request: { query: eventsQuery },
      answers: {
        200: text(
          'text/event-stream',
          'Server-sent events; the stream stays open (a heartbeat comment every 15 s, closed after 30 min).',
          sample.event,
        ),
      },
      errors: ['validation_error', 'not_found', 'stream_limit_reached', 'shutting_down'],
    },
    {
      method: 'get',
      path: '/api/v1/ws',
      operationId: 'notificationSocket',
      tag: 'Events',
      summary: 'WebSocket notifications about transactions',
      description:
        "A WebSocket carrying the changes of `GET /api/v1/events`: the caller's transactions (the admin's: " +
        "everyone's, or `user_id`'s). Authenticate with `Authorization: Bearer <key>` on the handshake or, from a " +
        'browser (which cannot set headers on a WebSocket), with `{"type":"auth","key":"<key>"}` as the first ' +
        "message within 5 s; never in the URL. Pages of another origin than the gateway's own or `CORS_ORIGINS` " +
        'are refused (403); a request without `Upgrade: websocket` gets 426.',
      access: 'caller',
      request: { query: eventsQuery },
      answers: {
        101: {
          description: [
            'Switching to the WebSocket protocol. The server sends JSON text messages: ' +
              '`{"type":"subscribed","user_id":<uuid or null>}` once subscribed, then ' +
              '`{"type":"transaction","data":<Transaction>}` for each change. It reads only the auth message. ' +
              'It pings every 15 s and cuts off a client that has not answered the previous ping; a socket ' +
              'lasts at most 30 min.',
            'Close codes: 1001 shutting down; 1011 a change was lost (reconnect); 1013 try again later ' +
              '(shutting down, storage unavailable, at capacity); 4000 lifetime ended (reconnect); 4400 invalid ' +
              'query; 4401 no valid key (none within 5 s, another message first, or a refused key: counted as a ' +
              "failed authentication); 4404 `user_id` unknown or not the caller's; 4408 too slow (over 1 MiB " +
              'waiting); 4429 too many sockets and event streams of this caller (8 together), too many failed ' +
              'authentications from this address, or the global rate limit.',
          ].join('\n\n'),
        },
      },
      errors: ['origin_not_allowed', 'upgrade_required'],
    },
    {
      method: 'get',
      path: '/api/v1/me',
      operationId: 'me',
      tag: 'Users',
      summary: 'Who the key belongs to (the viewer uses it to find its user id)',
      access: 'caller',
      answers: {
        200: json(
          z
            .object({
              id: z.string(),
              name: z.string().nullable(),
              email: z.string().nullable(),
              created_at: z.string().nullable(),
              kind: z.enum(['user', 'admin']),
            })
            .meta({ id: 'Me' }),
          'The caller.',
          sample.me,
        ),
      },
    },
    {
      method: 'get',
      path: '/',
      operationId: 'viewer',
      tag: 'Operations',
      summary: 'The transaction viewer (a page that asks for an API key)',
      access: 'anyone',
      answers: { 200: text('text/html', 'An HTML page.', sample.page('Transactions · payment gateway')) },
    },
    {
      method: 'get',
      path: '/viewer/{file}',
      operationId: 'viewerAsset',
      tag: 'Operations',
      summary: "The viewer's scripts and styles",
      access: 'anyone',
      request: { params: z.object({ file: z.string() }) },
      answers: {
        200: text('text/javascript', 'A static file.', 'export function formatAmount(minor, currency) {\n'),
      },
      errors: ['not_found'],
      missing: 'file',
    },
    {
      method: 'post',
      path: '/graphql',
      operationId: 'graphql',
      tag: 'GraphQL',
      summary: 'The GraphQL API: me, balance, transactions, transaction; deposit and withdraw',
      description:
        'The same engine, authorization, Idempotency-Key (required for a mutation; one mutation field per ' +
        'request), rate limits and error codes as the REST routes; depth, cost and alias limits. The ' +
        'schema is `GET /graphql/schema.graphql`; introspection needs no key.',
      access: 'caller',
      graphql: true,
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              schema: graphqlRequest,
              examples: {
                balance: { summary: 'a balance', value: sample.graphql.request },
                deposit: { summary: 'a deposit (send an Idempotency-Key)', value: sample.graphql.deposit },
              },
            },
          },
        },
      },
      answers: {
        200: json(graphqlAnswer, 'The data, and an error per field that failed.', sample.graphql.answer),
        400: json(graphqlAnswer, "Refused as a whole (the status is its error's): no data.", sample.graphql.refused),
      },
    },
    {
      method: 'get',
      path: '/graphql/schema.graphql',
      operationId: 'graphqlSchema',
      tag: 'GraphQL',
      summary: 'The GraphQL schema (SDL)',
      access: 'anyone',
      answers: { 200: text('text/plain', 'The schema.', 'type Query {\n  me: Caller\n') },
    },
    {
      method: 'get',
      path: '/admin',
      operationId: 'adminPanel',
      tag: 'Operations',
      summary: 'The admin panel (a page that asks for the admin key and uses this API)',
      access: 'anyone',
      answers: { 200: text('text/html', 'An HTML page.', sample.page('Admin · payment gateway')) },
    },
    {
      method: 'get',
      path: '/admin/{file}',
      operationId: 'adminPanelAsset',
      tag: 'Operations',
      summary: "The admin panel's scripts and styles",
      access: 'anyone',
      request: { params: z.object({ file: z.string() }) },
      answers: { 200: text('text/javascript', 'A static file.', "import { call, problem } from '/viewer/api.js';\n") },
      errors: ['not_found'],
      missing: 'file',
    },
    {
      method: 'get',
      path: '/api/v1/admin/reconciliation',
      operationId: 'reconcile',
      tag: 'Admin',
      summary: 'Replay every journal and compare it with the read model and the live accounts',
      access: 'admin',
      answers: {
        200: json(reconciliationReport, 'The report; `ok` is false when anything disagrees.', sample.reconciliation),
      },
    },
    {
      method: 'get',
      path: '/api/v1/admin/shards',
      operationId: 'listShards',
      tag: 'Admin',
      summary: 'Which instance owns each shard, its fencing epoch, lease expiry and live actors',
      access: 'admin',
      answers: { 200: json(shardTable, 'The live instances and the shard table.', sample.shards) },
    },
    {
      method: 'get',
      path: '/api/v1/admin/dead-letters',
      operationId: 'listDeadLetters',
      tag: 'Admin',
      summary: 'Payments that gave up after their last attempt',
      description: LISTED,
      access: 'admin',
      request: { query: deadLetterListQuery },
      answers: { 200: json(deadLetterPage, 'A page of dead letters.', sample.deadLetters) },
      errors: ['validation_error', 'invalid_cursor'],
    },
    {
      method: 'post',
      path: '/api/v1/admin/dead-letters/{id}/retry',
      operationId: 'retryDeadLetter',
      tag: 'Admin',
      summary: 'Send a dead-lettered payment to the bank again',
      access: 'admin',
      request: { params: deadLetterParams },
      answers: {
        202: json(deadLetterRetry, 'The payment is running again; `retried_at` is set.', sample.deadLetterRetried),
      },
      missing: 'dead letter',
      errors: ['validation_error', 'not_found', 'already_retried', 'transaction_not_open', ...ACTOR_REFUSAL_CODES],
    },
    {
      method: 'post',
      path: '/webhooks/bank-callback',
      operationId: 'bankCallback',
      tag: 'Bank',
      summary: "The bank's result for one transfer",
      description:
        'Signed per Standard Webhooks: `webhook-signature` holds `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`; ' +
        'the timestamp must be within 5 minutes. Each `webhook-id` is applied once; a result for a finished ' +
        'transaction changes nothing.',
      access: 'bank',
      request: {
        headers: z.object({
          'webhook-id': z.string().min(1).max(255).meta({ description: 'Unique per message; repeats are no-ops.' }),
          'webhook-timestamp': z
            .string()
            .regex(/^[0-9]{1,15}$/)
            .meta({ description: 'Unix seconds when the message was signed.' }),
          'webhook-signature': z.string().min(1).meta({ description: 'Space-separated `v1,<base64>` signatures.' }),
        }),
        body: jsonBody(bankCallbackBody.meta({ id: 'BankCallback' }), {
          succeeded: { summary: 'A transfer the bank carried out', value: sample.bankCallback },
        }),
      },
      answers: { 200: json(webhookOutcome, 'Received; `status` tells what it changed.', sample.webhookOutcome) },
      errors: ['invalid_signature', ...ACTOR_REFUSAL_CODES],
    },
    {
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      tag: 'Operations',
      summary: 'Prometheus metrics',
      description: 'The admin key only, on the public port and on the dashboard port.',
      access: 'metrics',
      answers: {
        200: text('text/plain; version=0.0.4', 'The Prometheus text exposition format.', sample.metrics),
      },
      errors: ['forbidden'],
    },
    ...webhookOperations(sample.deposit.page.data[0]!),
    {
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      tag: 'Operations',
      summary: 'This document',
      access: 'anyone',
      answers: {
        200: json(
          z.record(z.string(), z.unknown()).meta({ description: 'An OpenAPI 3.1 document.' }),
          'The document.',
          {
            openapi: '3.1.0',
            info: { title: 'Payment gateway', version: '1' },
            paths: {
              '/health': { get: { operationId: 'health', summary: 'Whether the gateway and its dependencies answer' } },
            },
          },
        ),
      },
    },
    {
      method: 'get',
      path: '/docs',
      operationId: 'docs',
      tag: 'Operations',
      summary: 'This document in Swagger UI, where each operation can be tried',
      access: 'anyone',
      answers: { 200: text('text/html', 'An HTML page.', sample.page('Payment gateway API')) },
    },
    {
      method: 'get',
      path: '/docs/{file}',
      operationId: 'docsAsset',
      tag: 'Operations',
      summary: "Swagger UI's script and style sheet, and the script that starts it",
      access: 'anyone',
      request: { params: z.object({ file: z.string() }) },
      answers: {
        200: {
          description: 'A static file.',
          content: {
            'text/javascript': {
              schema: z.string(),
              example: "window.ui = SwaggerUIBundle({\n  url: '/openapi.json',\n",
            },
            'text/css': { schema: z.string(), example: '.swagger-ui {\n' },
          },
        },
      },
      errors: ['not_found'],
      missing: 'file',
    },
  ];
}
