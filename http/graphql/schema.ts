import { GraphQLError, GraphQLScalarType, Kind, valueFromASTUntyped, type ValueNode } from 'graphql';
import { createSchema } from 'graphql-yoga';
import type { Context } from 'koa';
import { z } from 'zod';
import type { TransactionType } from '../../engine/account.ts';
import type { Registry } from '../../engine/registry.ts';
import type { EventRow, ReadModel } from '../../persistence/read-model.ts';
import type { UserStore } from '../../persistence/users.ts';
import { mayActFor, requireCaller } from '../auth.ts';
import { encodeCursor } from '../cursor.ts';
import { ApiError, errorFromAnswer, errors } from '../errors.ts';
import type { Forwarder, OwnerAnswer } from '../forward.ts';
import { idempotencyKey, type Answer } from '../idempotency.ts';
import { mustSeeAccount, readBalance, type BalanceCommand, type BalanceJson } from '../routes/accounts.ts';
import { readPage } from '../routes/pages.ts';
import {
  listedPage,
  TRANSACTION_PATHS,
  type CreateCommand,
  type TransactionBody,
  type TransactionCreation,
} from '../routes/transactions.ts';
import { transactionBody, transactionIdParams, transactionListQuery, uuid } from '../schemas.ts';
import { eventJson, rowJson, type TransactionJson } from '../transaction-json.ts';
import { parseInput } from '../validation.ts';
import { typeDefs } from './type-defs.ts';

/** What the resolvers work with: the engine and stores, as the REST routes get them. */
export interface GraphqlServices {
  accounts: Registry;
  readModel: ReadModel;
  users: UserStore;
  currencies: readonly string[];
  creation: TransactionCreation;
  forwarding: Pick<Forwarder, 'askOwner'>;
}

/** A GraphQL request's context: the Koa request it came in (caller, request id) and the services. */
export interface GraphqlContext {
  koa: Context;
  services: GraphqlServices;
}

const MINOR_UNITS_RULE = 'MinorUnits must be a whole number written as a JSON number (1050 for 10.50)';

/** An integer of minor units as a JSON number: exact up to 2^53 - 1, where GraphQL's Int stops at 2^31 - 1. */
const minorUnits = new GraphQLScalarType({
  name: 'MinorUnits',
  serialize(value) {
    if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
    throw new GraphQLError('MinorUnits cannot represent this value');
  },
  parseValue(value) {
    if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
    throw new GraphQLError(MINOR_UNITS_RULE);
  },
  parseLiteral(node) {
    const value = node.kind === Kind.INT ? Number(node.value) : NaN;
    if (Number.isSafeInteger(value)) return value;
    throw new GraphQLError(MINOR_UNITS_RULE);
  },
});

const METADATA_RULE = 'Metadata must be a JSON object';

/**
 * Metadata as a JSON object, passed on as an object with own properties only (so `__proto__` stays a
 * key that the REST schema refuses by name, never a prototype); its keys and values are checked there.
 */
const metadata = new GraphQLScalarType({
  name: 'Metadata',
  serialize: (value) => value,
  parseValue: ownObject,
  parseLiteral: (node: ValueNode, variables) => ownObject(valueFromASTUntyped(node, variables)),
});

function ownObject(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new GraphQLError(METADATA_RULE);
  return Object.fromEntries(Object.entries(value));
}

/** The error with its details' fields named as the GraphQL arguments (`names` maps each REST field to one). */
function withArgumentNames(error: unknown, names: Readonly<Record<string, string>>): unknown {
  if (!(error instanceof ApiError) || !Array.isArray(error.fields.details)) return error;
  const details = (error.fields.details as { field: string; message: string }[]).map(({ field, message }) => {
    const [first = '', ...rest] = field.split('.');
    return { field: [names[first] ?? (first === '(body)' ? '(arguments)' : first), ...rest].join('.'), message };
  });
  return error.with({ details });
}

/** Checks arguments with the REST API's schema, so that both APIs accept and refuse the same input. */
function parseArguments<S extends z.ZodType>(schema: S, input: unknown, names: Record<string, string>): z.infer<S> {
  try {
    return parseInput(schema, input);
  } catch (error) {
    throw withArgumentNames(error, names);
  }
}

/** The GraphQL transaction: the contract's transaction object with camelCase names. */
function transactionNode(t: TransactionJson) {
  return {
    id: t.id,
    type: t.type,
    userId: t.user_id,
    amount: t.amount,
    currency: t.currency,
    status: t.status,
    description: t.description,
    metadata: t.metadata,
    failure: t.failure,
    bankReference: t.bank_reference,
    attempts: t.attempts,
    createdAt: t.created_at,
    updatedAt: t.updated_at,
    completedAt: t.completed_at,
  };
}

type TransactionNode = ReturnType<typeof transactionNode>;

/** An audit-trail entry with camelCase names. */
function eventNode(event: EventRow) {
  const json = eventJson(event);
  return { ...json, requestId: json.request_id, bankReference: json.bank_reference ?? null };
}

/** The REST answer (run here, or by the owner elsewhere) that GraphQL reads its result from. */
function fromOwner(answer: OwnerAnswer): Answer {
  return {
    response: { status: answer.status, body: answer.body.toString('utf8') },
    replayed: answer.headers['idempotent-replayed'] === 'true',
  };
}

/** The body of a REST answer that succeeded with `status`, or the error it carries. */
function bodyOf<T>(answer: Answer, status: number, headers?: OwnerAnswer['headers']): T {
  if (answer.response.status !== status) throw errorFromAnswer({ ...answer.response, headers });
  return JSON.parse(answer.response.body) as T;
}

const TRANSACTION_INPUT_NAMES = { user_id: 'input.userId' } as const;
const inputNames = (fields: readonly string[]) => Object.fromEntries(fields.map((field) => [field, `input.${field}`]));

interface TransactionInput {
  amount: number;
  currency: string;
  userId?: string | null;
  description?: string | null;
  metadata?: Record<string, unknown> | null;
}

/** The REST body of a GraphQL create's input: absent and null fields both left out. */
function restBody(input: TransactionInput): Record<string, unknown> {
  const body: Record<string, unknown> = { amount: input.amount, currency: input.currency };
  if (input.userId != null) body.user_id = input.userId;
  if (input.description != null) body.description = input.description;
  if (input.metadata != null) body.metadata = input.metadata;
  return body;
}

/** The zod schema of a transaction's input, built once per list of currencies (zod compiles a schema on first use). */
const bodies = new WeakMap<readonly string[], ReturnType<typeof transactionBody>>();
function bodyFor(currencies: readonly string[]): ReturnType<typeof transactionBody> {
  let body = bodies.get(currencies);
  if (!body) bodies.set(currencies, (body = transactionBody(currencies)));
  return body;
}

/** The argument of `balance`: a user id. */
const balanceArguments = z.strictObject({ user_id: uuid });

/**
 * A deposit or withdrawal, as `POST /api/v1/deposits` or `/withdrawals` does it: the same checks, the
 * same command (forwarded to the account's owner when another instance owns it), the same idempotency
 * gate. A replay says so with the `Idempotent-Replayed: true` header.
 */
async function create(type: TransactionType, input: TransactionInput, { koa, services }: GraphqlContext) {
  const caller = requireCaller(koa.state);
  const key = idempotencyKey(koa);
  const schema = bodyFor(services.currencies);
  const names = { ...inputNames(['amount', 'currency', 'description', 'metadata']), ...TRANSACTION_INPUT_NAMES };
  const body: TransactionBody = parseArguments(schema, restBody(input), names);
  let command: CreateCommand;
  try {
    command = await services.creation.command(caller, key, type, TRANSACTION_PATHS[type], body);
  } catch (error) {
    throw withArgumentNames(error, names);
  }
  const forwarded = await services.forwarding.askOwner(koa, command, false);
  const answer = forwarded ? fromOwner(forwarded) : await services.creation.run(koa, command);
  if (answer.replayed) koa.set('Idempotent-Replayed', 'true');
  return transactionNode(bodyOf<TransactionJson>(answer, 202, forwarded?.headers));
}

/** The balance of an account the caller may see, from its actor here or on its owner. */
async function balance(userId: string, { koa, services }: GraphqlContext) {
  const caller = requireCaller(koa.state);
  const { user_id } = parseArguments(balanceArguments, { user_id: userId }, { user_id: 'userId' });
  await mustSeeAccount(caller, user_id, services.users);
  const command: BalanceCommand = { kind: 'read_balance', user_id };
  const forwarded = await services.forwarding.askOwner(koa, command, true);
  const json = forwarded
    ? bodyOf<BalanceJson>(fromOwner(forwarded), 200, forwarded.headers)
    : await readBalance(services, user_id);
  return { userId: json.user_id, balances: json.balances };
}

interface ListArguments {
  userId?: string | null;
  filter?: {
    type?: TransactionType | null;
    status?: string | null;
    currency?: string | null;
    createdFrom?: string | null;
    createdTo?: string | null;
    minAmount?: number | null;
    maxAmount?: number | null;
  } | null;
  first?: number | null;
  after?: string | null;
}

/** Where each REST query field comes from in `transactions(...)`, for the details of a refusal. */
const LIST_NAMES = {
  user_id: 'userId',
  limit: 'first',
  cursor: 'after',
  type: 'filter.type',
  status: 'filter.status',
  currency: 'filter.currency',
  created_from: 'filter.createdFrom',
  created_to: 'filter.createdTo',
  min_amount: 'filter.minAmount',
  max_amount: 'filter.maxAmount',
};

/** The REST query of `GET /api/v1/transactions` that a GraphQL list stands for (absent and null left out). */
function restQuery({ userId, filter, first, after }: ListArguments): Record<string, string> {
  const query: Record<string, string | number | null | undefined> = {
    user_id: userId,
    limit: first,
    cursor: after,
    type: filter?.type,
    status: filter?.status,
    currency: filter?.currency,
    created_from: filter?.createdFrom,
    created_to: filter?.createdTo,
    min_amount: filter?.minAmount,
    max_amount: filter?.maxAmount,
  };
  return Object.fromEntries(
    Object.entries(query).flatMap(([name, value]) => (value == null ? [] : [[name, String(value)]])),
  );
}

/** A page of transactions as a connection: one edge per row, each with the REST cursor that follows it. */
async function transactions(args: ListArguments, { koa, services }: GraphqlContext) {
  const caller = requireCaller(koa.state);
  const query = parseArguments(transactionListQuery, restQuery(args), LIST_NAMES);
  const { rows, has_more } = await readPage(services.readModel, listedPage(caller, query, undefined));
  const edges = rows.map((row) => ({ node: transactionNode(rowJson(row)), cursor: encodeCursor(row) }));
  return { edges, pageInfo: { hasNextPage: has_more, endCursor: edges.at(-1)?.cursor ?? null } };
}

/** One transaction the caller may see; its events are read only when asked for. */
async function transaction(id: string, { koa, services }: GraphqlContext) {
  const caller = requireCaller(koa.state);
  const { id: valid } = parseArguments(transactionIdParams, { id }, {});
  const row = await services.readModel.find(valid);
  if (!row || !mayActFor(caller, row.user_id)) throw errors.notFound({ what: 'transaction' });
  return transactionNode(rowJson(row));
}

/** Who the key belongs to, as `GET /api/v1/me` says. */
async function me({ koa, services }: GraphqlContext) {
  const caller = requireCaller(koa.state);
  if (caller.kind === 'admin') return { id: caller.id, kind: caller.kind, name: null, email: null, createdAt: null };
  // Authentication found the user a moment ago; only a user deleted since is missing here.
  const user = await services.users.findById(caller.id);
  if (!user) throw errors.unauthenticated();
  return {
    id: user.id,
    kind: caller.kind,
    name: user.name,
    email: user.email,
    createdAt: user.created_at.toISOString(),
  };
}

/** The executable schema: the SDL of `type-defs.ts` and its resolvers, which read services from the context. */
export const schema = createSchema<GraphqlContext>({
  typeDefs,
  resolvers: {
    MinorUnits: minorUnits,
    Metadata: metadata,
    Query: {
      me: (_: unknown, __: unknown, context: GraphqlContext) => me(context),
      balance: (_: unknown, args: { userId: string }, context: GraphqlContext) => balance(args.userId, context),
      transactions: (_: unknown, args: ListArguments, context: GraphqlContext) => transactions(args, context),
      transaction: (_: unknown, args: { id: string }, context: GraphqlContext) => transaction(args.id, context),
    },
    Mutation: {
      deposit: (_: unknown, args: { input: TransactionInput }, context: GraphqlContext) =>
        create('deposit', args.input, context),
      withdraw: (_: unknown, args: { input: TransactionInput }, context: GraphqlContext) =>
        create('withdrawal', args.input, context),
    },
    AuditedTransaction: {
      events: async (parent: TransactionNode, _: unknown, { services }: GraphqlContext) =>
        (await services.readModel.events({ id: parent.id, user_id: parent.userId })).map(eventNode),
    },
  },
});
