import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildSchema, findBreakingChanges, findDangerousChanges, printSchema } from 'graphql';
import { shardOf } from '../engine/shards.ts';
import type { Gateway } from '../gateway.ts';
import { schema } from '../http/graphql/schema.ts';
import {
  ADMIN_KEY,
  client,
  createUser,
  fund,
  startTestGateway,
  type Answer,
  startGatewayPair,
  createUserOwnedBy,
} from './support/gateway.ts';

// The GraphQL API at POST /graphql, against real gateways: two of one cluster (a request for an
// account the other owns is forwarded), and one with low rate limits.

const SHARDS = 8;
let a: Gateway;
let b: Gateway;
/** A user whose account b owns: at a, its balance reads and creates are forwarded to b. */
let alice: { id: string; api_key: string };
let bob: { id: string; api_key: string };

before(async () => {
  [a, b] = await startGatewayPair('gql', SHARDS);
  alice = await createUserOwnedBy(a, b, SHARDS, 'Alice');
  bob = await createUser(client(a.url), 'Bob');
});
after(async () => {
  await a?.close();
  await b?.close();
});

interface GraphqlOptions {
  key?: string;
  variables?: Record<string, unknown>;
  idempotencyKey?: string;
  headers?: Record<string, string>;
}

/** POST /graphql at `via`, as the key's holder. */
function graphql(via: Gateway, query: string, options: GraphqlOptions = {}): Promise<Answer> {
  return client(via.url)('POST', '/graphql', {
    ...(options.key !== undefined ? { key: options.key } : {}),
    body: { query, ...(options.variables ? { variables: options.variables } : {}) },
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
  });
}

/** The codes of an answer's errors, in order. */
const codes = (answer: Answer): string[] =>
  (answer.json.errors ?? []).map((error: { extensions: { code: string } }) => error.extensions.code);

const DEPOSIT =
  'mutation($input: TransactionInput!) { deposit(input: $input) { id type userId amount currency status } }';
const WITHDRAW = 'mutation($input: TransactionInput!) { withdraw(input: $input) { id amount status } }';

test('a user reads who they are, their balance, their transactions and one with its audit trail', async () => {
  const user = await createUser(client(a.url), 'Reader');
  const owner = a.shards.owns(shardOf(user.id, SHARDS)) ? a : b;
  await fund(owner, client(owner.url), user, 70_000);
  // Past GraphQL's 32-bit Int: amounts are MinorUnits, JSON numbers exact to 2^53 - 1.
  const big = await graphql(a, DEPOSIT, {
    key: user.api_key,
    variables: { input: { amount: 5_000_000_000, currency: 'EUR', description: 'big', metadata: { order: '7' } } },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(big.status, 200, big.text);
  assert.deepEqual(big.json.data.deposit, {
    id: big.json.data.deposit.id,
    type: 'deposit',
    userId: user.id,
    amount: 5_000_000_000,
    currency: 'EUR',
    status: 'pending',
  });

  const answer = await graphql(
    a,
    `
      query ($me: ID!) {
        me {
          id
          kind
          name
        }
        balance(userId: $me) {
          userId
          balances {
            currency
            available
            held
          }
        }
        transactions(first: 1) {
          edges {
            cursor
            node {
              id
              amount
            }
          }
          pageInfo {
            hasNextPage
            endCursor
          }
        }
      }
    `,
    { key: user.api_key, variables: { me: user.id } },
  );
  assert.equal(answer.status, 200, answer.text);
  const { me, balance, transactions } = answer.json.data;
  assert.deepEqual(me, { id: user.id, kind: 'user', name: 'Reader' });
  const usd = balance.balances.find((entry: { currency: string }) => entry.currency === 'USD');
  assert.deepEqual(usd, { currency: 'USD', available: 70_000, held: 0 });
  // The newest first, and the REST API's cursors: the end cursor is the REST page's next_cursor.
  assert.equal(transactions.edges[0].node.id, big.json.data.deposit.id);
  assert.equal(transactions.pageInfo.hasNextPage, true);
  const rest = await client(a.url)('GET', '/api/v1/transactions?limit=1', { key: user.api_key });
  assert.equal(transactions.pageInfo.endCursor, rest.json.next_cursor);
  const next = await graphql(
    a,
    `
      query ($after: String) {
        transactions(first: 5, after: $after) {
          edges {
            node {
              amount
            }
          }
          pageInfo {
            hasNextPage
          }
        }
      }
    `,
    {
      key: user.api_key,
      variables: { after: transactions.pageInfo.endCursor },
    },
  );
  assert.deepEqual(next.json.data.transactions, {
    edges: [{ node: { amount: 70_000 } }],
    pageInfo: { hasNextPage: false },
  });

  const audited = await graphql(
    a,
    `
      query ($id: ID!) {
        transaction(id: $id) {
          id
          status
          metadata
          events {
            seq
            type
            status
            cause
            requestId
          }
        }
      }
    `,
    {
      key: user.api_key,
      variables: { id: big.json.data.deposit.id },
    },
  );
  const { status, events } = audited.json.data.transaction;
  assert.deepEqual(audited.json.data.transaction.metadata, { order: '7' });
  // Created by this request; the bank may have taken it up since (processing, cause bank_response).
  assert.deepEqual([events[0].type, events[0].status, events[0].cause], ['transaction_created', 'pending', 'api']);
  assert.equal(events.findLast((event: { status: string | null }) => event.status !== null).status, status);
  assert.equal(audited.json.data.transaction.events[0].requestId, big.headers.get('x-request-id'));
});

test("another user's balance, transactions and transaction are not found; ids cannot be probed", async () => {
  const deposit = await graphql(a, DEPOSIT, {
    key: bob.api_key,
    variables: { input: { amount: 100, currency: 'USD' } },
    idempotencyKey: crypto.randomUUID(),
  });
  const answer = await graphql(
    a,
    `
      query ($bob: ID!, $id: ID!) {
        balance(userId: $bob) {
          userId
        }
        transactions(userId: $bob) {
          edges {
            cursor
          }
        }
        transaction(id: $id) {
          id
        }
      }
    `,
    { key: alice.api_key, variables: { bob: bob.id, id: deposit.json.data.deposit.id } },
  );
  assert.equal(answer.status, 200, answer.text);
  assert.deepEqual(answer.json.data, { balance: null, transactions: null, transaction: null });
  assert.deepEqual(codes(answer), ['not_found', 'not_found', 'not_found']);
  for (const error of answer.json.errors) {
    assert.equal(error.extensions.status, 404);
    assert.equal(error.extensions.request_id, answer.headers.get('x-request-id'));
  }
  // Naming someone else in a create is refused the same way, and nothing is created.
  const named = await graphql(a, DEPOSIT, {
    key: alice.api_key,
    variables: { input: { amount: 100, currency: 'USD', userId: bob.id } },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.deepEqual(codes(named), ['not_found']);
});

test('the admin names the user to act for, and reads any account', async () => {
  const unnamed = await graphql(a, DEPOSIT, {
    key: ADMIN_KEY,
    variables: { input: { amount: 300, currency: 'USD' } },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.deepEqual(codes(unnamed), ['validation_error']);
  assert.deepEqual(unnamed.json.errors[0].extensions.details, [
    { field: 'input.userId', message: 'the admin must name the user to act for' },
  ]);
  const deposit = await graphql(a, DEPOSIT, {
    key: ADMIN_KEY,
    variables: { input: { amount: 300, currency: 'USD', userId: bob.id } },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(deposit.json.data.deposit.userId, bob.id, deposit.text);
  const answer = await graphql(
    a,
    `
      query ($bob: ID!, $id: ID!, $nobody: ID!) {
        me {
          id
          kind
        }
        balance(userId: $bob) {
          userId
        }
        transactions(userId: $bob, filter: { type: deposit, minAmount: 300, maxAmount: 300 }) {
          edges {
            node {
              id
            }
          }
        }
        transaction(id: $id) {
          userId
        }
        unknown: balance(userId: $nobody) {
          userId
        }
      }
    `,
    { key: ADMIN_KEY, variables: { bob: bob.id, id: deposit.json.data.deposit.id, nobody: crypto.randomUUID() } },
  );
  assert.deepEqual(answer.json.data, {
    me: { id: 'admin', kind: 'admin' },
    balance: { userId: bob.id },
    transactions: { edges: [{ node: { id: deposit.json.data.deposit.id } }] },
    transaction: { userId: bob.id },
    unknown: null,
  });
  assert.deepEqual(codes(answer), ['not_found']);
});

test('a mutation replays under its Idempotency-Key, refuses the key with another input, and shares keys with REST', async () => {
  const key = crypto.randomUUID();
  const input = { amount: 1234, currency: 'USD', description: 'once' };
  const first = await graphql(a, DEPOSIT, { key: alice.api_key, variables: { input }, idempotencyKey: key });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.headers.get('idempotent-replayed'), null);
  const replay = await graphql(a, DEPOSIT, { key: alice.api_key, variables: { input }, idempotencyKey: key });
  assert.deepEqual(replay.json, first.json);
  assert.equal(replay.headers.get('idempotent-replayed'), 'true');
  const reused = await graphql(a, DEPOSIT, {
    key: alice.api_key,
    variables: { input: { ...input, amount: 99 } },
    idempotencyKey: key,
  });
  assert.deepEqual(reused.json.data, { deposit: null });
  assert.deepEqual(codes(reused), ['idempotency_key_reused']);
  assert.equal(reused.json.errors[0].extensions.status, 422);
  // The same operation by REST with the same key is the same request: its replay.
  const rest = await client(a.url)('POST', '/api/v1/deposits', {
    key: alice.api_key,
    body: input,
    idempotencyKey: key,
  });
  assert.equal(rest.status, 202, rest.text);
  assert.equal(rest.json.id, first.json.data.deposit.id);
  assert.equal(rest.headers.get('idempotent-replayed'), 'true');

  // A refusal of the account is an outcome, replayed as it was first answered.
  const short = { input: { amount: 10 ** 12, currency: 'GBP' } };
  const refusalKey = crypto.randomUUID();
  const refused = await graphql(a, WITHDRAW, { key: alice.api_key, variables: short, idempotencyKey: refusalKey });
  assert.deepEqual(refused.json.data, { withdraw: null });
  assert.deepEqual(codes(refused), ['insufficient_funds']);
  const again = await graphql(a, WITHDRAW, { key: alice.api_key, variables: short, idempotencyKey: refusalKey });
  assert.deepEqual(again.json, refused.json);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
});

test('a mutation needs its Idempotency-Key and holds one field; a query needs a key, introspection does not', async () => {
  const keyless = await graphql(a, DEPOSIT, {
    key: alice.api_key,
    variables: { input: { amount: 1, currency: 'USD' } },
  });
  assert.equal(keyless.status, 400);
  assert.deepEqual(codes(keyless), ['idempotency_key_required']);
  assert.equal(keyless.json.data, undefined);
  const two = await graphql(
    a,
    'mutation { one: deposit(input: {amount: 1, currency: "USD"}) { id } two: deposit(input: {amount: 1, currency: "USD"}) { id } }',
    { key: alice.api_key, idempotencyKey: crypto.randomUUID() },
  );
  assert.equal(two.status, 400);
  assert.deepEqual(codes(two), ['validation_error']);
  const anonymous = await graphql(a, '{ me { id } }');
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer');
  assert.deepEqual(codes(anonymous), ['unauthenticated']);
  const introspection = await graphql(a, '{ __schema { mutationType { fields { name } } } }');
  assert.equal(introspection.status, 200, introspection.text);
  assert.deepEqual(
    introspection.json.data.__schema.mutationType.fields.map((field: { name: string }) => field.name),
    ['deposit', 'withdraw'],
  );
});

test('input is checked as REST checks it, and the details name the GraphQL argument', async () => {
  const answer = await graphql(a, DEPOSIT, {
    key: alice.api_key,
    variables: { input: { amount: 10 ** 12 + 1, currency: 'XXX' } },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.deepEqual(codes(answer), ['validation_error']);
  assert.deepEqual(
    answer.json.errors[0].extensions.details.map((detail: { field: string }) => detail.field),
    ['input.amount', 'input.currency'],
  );
  // A fraction is not a number of minor units: refused before anything runs, as a whole request.
  const fraction = await graphql(a, DEPOSIT, {
    key: alice.api_key,
    variables: { input: { amount: 10.5, currency: 'USD' } },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(fraction.status, 400);
  assert.deepEqual(codes(fraction), ['validation_error']);
  const reserved = await graphql(
    a,
    'mutation { deposit(input: {amount: 1, currency: "USD", metadata: {__proto__: "x"}}) { id } }',
    {
      key: alice.api_key,
      idempotencyKey: crypto.randomUUID(),
    },
  );
  assert.deepEqual(reserved.json.errors[0].extensions.details, [
    { field: 'input.metadata.__proto__', message: 'is a reserved key (__proto__, constructor, prototype)' },
  ]);
  const page = await graphql(a, '{ transactions(first: 0, after: "nope") { edges { cursor } } }', {
    key: alice.api_key,
  });
  assert.deepEqual(
    page.json.errors[0].extensions.details.map((detail: { field: string }) => detail.field),
    ['first'],
  );
});

test('a document over the depth, cost or alias limits is refused before it runs', async () => {
  const deep = await graphql(
    a,
    '{ __type(name: "Query") { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } }',
    {
      key: alice.api_key,
    },
  );
  assert.equal(deep.status, 400);
  assert.deepEqual(codes(deep), ['validation_error']);
  assert.match(deep.json.errors[0].message, /depth limit of 6/);
  const fields = 'id type userId amount currency status description metadata failure { code message } attempts';
  const page = `transactions(first: 100) { edges { cursor node { ${fields} createdAt updatedAt completedAt } } }`;
  const costly = await graphql(a, `{ one: ${page} two: ${page} }`, { key: alice.api_key });
  assert.equal(costly.status, 400);
  assert.match(costly.json.errors[0].message, /Cost limit of 10000/);
  const aliases = Array.from({ length: 11 }, (_, i) => `m${i}: me { id }`).join(' ');
  const aliased = await graphql(a, `{ ${aliases} }`, { key: alice.api_key });
  assert.equal(aliased.status, 400);
  assert.match(aliased.json.errors[0].message, /Aliases limit of 10/);
  for (const answer of [deep, costly, aliased]) assert.equal(answer.json.data, undefined);
});

test('a mutation and a balance read at the instance that does not own the account are forwarded to its owner', async () => {
  const key = crypto.randomUUID();
  const variables = { input: { amount: 777, currency: 'USD' } };
  const forwarded = await graphql(a, DEPOSIT, { key: alice.api_key, variables, idempotencyKey: key });
  assert.equal(forwarded.status, 200, forwarded.text);
  assert.ok(b.accounts.isAlive(alice.id) && !a.accounts.isAlive(alice.id), 'the owner b ran it, not a');
  const direct = await graphql(b, DEPOSIT, { key: alice.api_key, variables, idempotencyKey: key });
  assert.deepEqual(direct.json, forwarded.json);
  assert.equal(direct.headers.get('idempotent-replayed'), 'true');
  const replayed = await graphql(a, DEPOSIT, { key: alice.api_key, variables, idempotencyKey: key });
  assert.deepEqual(replayed.json, forwarded.json);
  assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
  // The owner's refusal comes back as the same error.
  const reused = await graphql(a, DEPOSIT, {
    key: alice.api_key,
    variables: { input: { amount: 1, currency: 'USD' } },
    idempotencyKey: key,
  });
  assert.deepEqual(codes(reused), ['idempotency_key_reused']);
  const balance = await graphql(a, 'query($me: ID!) { balance(userId: $me) { balances { currency held } } }', {
    key: alice.api_key,
    variables: { me: alice.id },
  });
  assert.equal(balance.status, 200, balance.text);
  assert.ok(!a.accounts.isAlive(alice.id), 'the balance came from the owner');
  assert.equal(balance.json.data.balance.balances.length, 3);
});

test('the published SDL is the schema in code', async () => {
  const answer = await client(a.url)('GET', '/graphql/schema.graphql');
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get('content-type') ?? '', /^text\/plain/);
  assert.equal(answer.text, printSchema(schema));
  const published = buildSchema(answer.text);
  assert.deepEqual(findBreakingChanges(schema, published), []);
  assert.deepEqual(findDangerousChanges(schema, published), []);
});

test('errors before GraphQL runs keep its shape: body, media type, method', async () => {
  const request = client(a.url);
  const malformed = await request('POST', '/graphql', {
    key: alice.api_key,
    raw: '{"query":',
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(malformed.status, 400);
  assert.deepEqual(codes(malformed), ['malformed_json']);
  const text = await request('POST', '/graphql', {
    key: alice.api_key,
    raw: '{ me { id } }',
    headers: { 'content-type': 'text/plain' },
  });
  assert.equal(text.status, 415);
  assert.deepEqual(codes(text), ['unsupported_media_type']);
  const batch = await request('POST', '/graphql', { key: alice.api_key, body: [{ query: '{ me { id } }' }] });
  assert.equal(batch.status, 400);
  assert.deepEqual(codes(batch), ['validation_error']);
  const get = await request('GET', '/graphql?query={me{id}}', { key: alice.api_key });
  assert.equal(get.status, 405);
  assert.deepEqual(codes(get), ['method_not_allowed']);
  const huge = await request('POST', '/graphql', {
    key: alice.api_key,
    body: { query: `{ me { id } } # ${'x'.repeat(70_000)}` },
  });
  assert.equal(huge.status, 413);
  assert.deepEqual(codes(huge), ['payload_too_large']);
});

test("an address over its failed-authentication limit gets its 429 on /graphql in GraphQL's shape", async () => {
  const limited = await startTestGateway({ RATE_LIMIT_AUTH_FAILURES_PER_MIN: '2' });
  try {
    for (let i = 0; i < 2; i += 1) {
      const wrong = await graphql(limited, '{ me { id } }', { key: `pgw_wrong_key_${i}_0123456789abcdef` });
      assert.equal(wrong.status, 401, wrong.text);
      assert.deepEqual(codes(wrong), ['unauthenticated']);
    }
    const over = await graphql(limited, '{ me { id } }', { key: 'pgw_wrong_key_2_0123456789abcdef' });
    assert.equal(over.status, 429, over.text);
    assert.ok(Number(over.headers.get('retry-after')) >= 1);
    assert.deepEqual(codes(over), ['rate_limit_exceeded']);
    assert.equal(over.json.errors[0].extensions.status, 429);
    assert.equal(over.json.error, undefined, 'not the REST body');
    // REST paths keep REST's shape for the same limit.
    const rest = await client(limited.url)('GET', '/api/v1/me', { key: 'pgw_wrong_key_3_0123456789abcdef' });
    assert.equal(rest.status, 429);
    assert.equal(rest.json.error, 'rate_limit_exceeded');
  } finally {
    await limited.close();
  }
});

test('rate limits: a balance field counts as a balance read, a list as a list, with REST in the same counters', async () => {
  const limited = await startTestGateway({
    RATE_LIMIT_BALANCE_PER_MIN: '2',
    RATE_LIMIT_TRANSACTIONS_PER_MIN: '2',
    RATE_LIMIT_GLOBAL_PER_MIN: '1000',
  });
  try {
    const user = await createUser(client(limited.url), 'Limited');
    const balance = `query($me: ID!) { balance(userId: $me) { userId } }`;
    const first = await graphql(limited, balance, { key: user.api_key, variables: { me: user.id } });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers.get('x-ratelimit-limit'), '2');
    assert.equal(first.headers.get('x-ratelimit-remaining'), '1');
    // REST's balance route spends the same budget.
    const rest = await client(limited.url)('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
    assert.equal(rest.status, 200);
    const over = await graphql(limited, balance, { key: user.api_key, variables: { me: user.id } });
    assert.equal(over.status, 429, over.text);
    assert.ok(Number(over.headers.get('retry-after')) >= 1);
    assert.deepEqual(codes(over), ['rate_limit_exceeded']);
    assert.equal(over.json.errors[0].extensions.status, 429);
    assert.equal(over.json.errors[0].extensions.retry_after, Number(over.headers.get('retry-after')));
    assert.equal(over.json.data, undefined, 'nothing ran');
    // Aliases do not share a charge: two lists in one request spend two.
    const lists = await graphql(
      limited,
      '{ one: transactions { edges { cursor } } two: transactions { edges { cursor } } }',
      {
        key: user.api_key,
      },
    );
    assert.equal(lists.status, 200, lists.text);
    assert.equal(lists.headers.get('x-ratelimit-remaining'), '0');
    const third = await graphql(limited, '{ transactions { edges { cursor } } }', { key: user.api_key });
    assert.equal(third.status, 429);
    // A mutation counts like a POST: only against the global limit.
    const deposit = await graphql(limited, DEPOSIT, {
      key: user.api_key,
      variables: { input: { amount: 5, currency: 'USD' } },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(deposit.json.data.deposit.amount, 5, deposit.text);
  } finally {
    await limited.close();
  }
});
