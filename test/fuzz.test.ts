import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Gateway } from '../gateway.ts';
import { createUserBody, historyQuery, transactionBody, typedListQuery } from '../http/schemas.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';

// Every request in this file is invalid by construction (the generators never make a valid one), so
// each must get a 4xx in the contract's error shape, never a 2xx or a 5xx, and must write nothing.
// A failure prints fast-check's seed; `FUZZ_SEED=<seed>` replays the same run.

/** Requests in flight at once. */
const BATCH = 20;
/** Tries per request: one more when a reused connection was reset (see `send`). */
const SEND_ATTEMPTS_MAX = 2;
const BODY_SIZE_MAX_BYTES = 64 * 1024;
const CURRENCIES = ['USD', 'EUR', 'GBP'];
const STATUSES = ['pending', 'processing', 'succeeded', 'failed'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/** One bad request, with the statuses (all 4xx) and error codes it may get. */
interface Case {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Send the body as a stream of chunks, without a Content-Length. */
  chunked?: boolean;
  statuses: readonly number[];
  codes?: readonly string[];
}

interface Caller {
  id: string;
  api_key: string;
}

let gateway: Gateway;
/** The fuzzed caller. */
let alice: Caller;
/** Another user, whose id alice may not act for. */
let bob: Caller;
let baseline: Awaited<ReturnType<typeof written>>;

// The fuzzed users have no transactions, so no payment worker writes anything in the background.
before(async () => {
  gateway = await startTestGateway({ BODY_SIZE_MAX_BYTES: String(BODY_SIZE_MAX_BYTES) });
  const request = client(gateway.url);
  [alice, bob] = [await createUser(request, 'Alice'), await createUser(request, 'Bob')];
  baseline = await written();
});
after(() => gateway.close());

/** Everything a request by the fuzzed callers could have written. */
async function written() {
  const users = `${alice.id},${bob.id}`;
  const [row] = await gateway.sql<{ users: number; transactions: number; journal: number; keys: number }[]>`
    SELECT (SELECT count(*) FROM users)::int AS users,
           (SELECT count(*) FROM transactions WHERE user_id = ANY(string_to_array(${users}, ',')::uuid[]))::int
             AS transactions,
           (SELECT count(*) FROM journal WHERE user_id = ANY(string_to_array(${users}, ',')::uuid[]))::int AS journal,
           (SELECT count(*) FROM idempotency_keys WHERE caller = ANY(string_to_array(${`${users},admin`}, ',')))::int
             AS keys`;
  return row;
}

function chunks(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      for (let at = 0; at < bytes.length; at += 16 * 1024) controller.enqueue(bytes.subarray(at, at + 16 * 1024));
      controller.close();
    },
  });
}

async function send(c: Case): Promise<{ status: number; headers: Headers; text: string }> {
  // Without a Content-Type of its own, a body goes as bytes: a string would get text/plain from fetch.
  const typed = 'content-type' in c.headers;
  for (let attempt = 1; ; attempt += 1) {
    const body =
      c.body === undefined ? undefined : c.chunked ? chunks(c.body) : typed ? c.body : new TextEncoder().encode(c.body);
    try {
      const response = await fetch(gateway.url + c.path, {
        method: c.method,
        headers: c.headers,
        body,
        ...(c.chunked ? { duplex: 'half' as const } : {}),
      });
      return { status: response.status, headers: response.headers, text: await response.text() };
    } catch (error) {
      // A kept-alive connection the server closed as idle just as fetch reused it resets (a loaded
      // machine fires fetch's idle timer late); a browser retries that once on a new connection, and so
      // does this client. A reset that happens again is the server's, and fails the case.
      const code = (error as { cause?: { code?: string } }).cause?.code;
      if (attempt >= SEND_ATTEMPTS_MAX || (code !== 'ECONNRESET' && code !== 'UND_ERR_SOCKET')) throw error;
    }
  }
}

/** Sends one case and checks its answer. */
async function check(c: Case): Promise<void> {
  const answer = await send(c);
  const seen = `${c.method} ${c.path.slice(0, 300)} ${c.body?.slice(0, 200) ?? ''} → ${answer.status} ${answer.text.slice(0, 300)}`;
  assert.ok(c.statuses.includes(answer.status), `expected ${c.statuses.join(' or ')}: ${seen}`);
  let json: { error?: unknown; message?: unknown; request_id?: unknown };
  try {
    json = JSON.parse(answer.text) as typeof json;
  } catch {
    assert.fail(`not JSON: ${seen}`);
  }
  assert.match(String(json.error), /^[a-z]+(?:_[a-z]+)*$/, seen);
  if (c.codes) assert.ok(c.codes.includes(String(json.error)), `expected ${c.codes.join(' or ')}: ${seen}`);
  assert.equal(typeof json.message, 'string', seen);
  assert.equal(json.request_id, answer.headers.get('x-request-id'), seen);
  assert.equal(answer.headers.get('cache-control'), 'no-store', seen);
  assert.equal(answer.headers.get('x-content-type-options'), 'nosniff', seen);
}

/** A case as a failure report prints it: bodies of up to a megabyte, cut short. */
function readable(c: Case): Case {
  const body = c.body === undefined ? '' : ` ${JSON.stringify(c.body.slice(0, 200))} (${c.body.length} characters)`;
  const text = `${c.method} ${c.path}${body}${c.chunked ? ' chunked' : ''} → ${c.statuses.join('|')}`;
  return Object.defineProperty({ ...c }, fc.toStringMethod, { value: () => text });
}

/**
 * Sends `runs` batches of BATCH cases in parallel; after each batch, nothing may have been written.
 * No shrinking: a write stays in the database, so every later run would fail too and shrinking would
 * blame innocent cases. The failing batch is reported as it was. Each test checks that it sent all
 * `runs × BATCH` it names, so that none depends on another having run.
 */
async function fuzz(cases: fc.Arbitrary<Case>, runs: number): Promise<void> {
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(cases.map(readable), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
      await Promise.all(batch.map(check));
      sent += batch.length;
      assert.deepEqual(await written(), baseline);
    }),
    { numRuns: runs, endOnFailure: true, ...(SEED !== undefined ? { seed: SEED } : {}) },
  );
  assert.equal(sent, runs * BATCH);
}

// Values of the wrong JSON type for a field that wants a number, a string, or an object.
const notNumbers = fc.constantFrom<unknown>(null, true, false, '', '1', [], {}, [1], { value: 1 });
const notStrings = fc.constantFrom<unknown>(null, true, false, 0, 1, -1.5, [], {}, ['USD'], { value: 'x' });
const notObjects = fc
  .jsonValue({ maxDepth: 3 })
  .filter((value) => value === null || typeof value !== 'object' || Array.isArray(value));
/** A character Postgres cannot store: U+0000, or one half of a surrogate pair on its own. */
const unstorableChar = fc.oneof(
  fc.constant('\u0000'),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)),
);
/**
 * Well-formed text (any script, emoji included) with one unstorable character put in; within the
 * field's length, so that only the characters are wrong. Inserting a lone half between whole graphemes
 * can never complete a pair.
 */
const unstorable = (maxLength: number) =>
  fc
    .tuple(fc.string({ unit: 'grapheme', maxLength: 8 }), unstorableChar, fc.string({ unit: 'grapheme', maxLength: 8 }))
    .map(([head, bad, tail]) => head + bad + tail)
    .filter((value) => value.length <= maxLength);
const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype'];
const printable = (maxLength: number) => fc.stringMatching(new RegExp(`^[\\x21-\\x7e]{1,${maxLength}}$`));
const base64url = (text: string) => Buffer.from(text).toString('base64url');

/** For each field of the transaction body's schema, values it must refuse. */
const BAD_TRANSACTION_FIELDS: Record<string, fc.Arbitrary<unknown>> = {
  amount: fc.oneof(
    fc.integer({ max: 0 }),
    fc.double({ noNaN: true }).filter((value) => !Number.isInteger(value)),
    fc.double({ min: 1e12 + 1, noNaN: true }),
    fc.constantFrom(-0, 1e300, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, 1e12 + 1, 0.5, 5e-324, -1e300),
    fc.string(),
    fc.integer({ min: 1, max: 1_000_000 }).map(String),
    fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e3', '0x10', '1_000', ' 100', '10.50', '١٠٠'),
    notNumbers,
  ),
  currency: fc.oneof(
    fc.string().filter((value) => !CURRENCIES.includes(value)),
    fc.constantFrom('usd', 'Usd', 'XXX', 'JPY', 'US', 'USDD', ' USD', 'USD '),
    notStrings,
  ),
  user_id: fc.oneof(
    fc.string().filter((value) => !UUID.test(value)),
    fc.uuid().map((id) => id.replace(/-/g, '')),
    fc.uuid().map((id) => `{${id}}`),
    fc.uuid().map((id) => `${id.slice(0, -1)}g`),
    notStrings,
  ),
  description: fc.oneof(fc.string({ minLength: 501, maxLength: 2000 }), unstorable(500), notStrings),
  metadata: fc.oneof(
    notObjects,
    fc
      .integer({ min: 21, max: 60 })
      .map((keys) => Object.fromEntries(Array.from({ length: keys }, (_, i) => [`k${i}`, 'v']))),
    fc.string({ maxLength: 20 }).map((value) => ({ '': value })),
    fc.string({ minLength: 41, maxLength: 100 }).map((key) => ({ [key]: 'v' })),
    fc
      .tuple(fc.stringMatching(/^[a-z]{1,10}$/), fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.object()))
      .map(([key, value]) => ({ [key]: value })),
    fc
      .tuple(fc.stringMatching(/^[a-z]{1,10}$/), fc.integer({ min: 501, max: 2000 }))
      .map(([key, length]) => ({ [key]: 'x'.repeat(length) })),
    // Text Postgres cannot store, in a key or a value, beside good pairs.
    fc.tuple(unstorable(40), fc.string({ maxLength: 20 })).map(([key, value]) => ({ ok: 'v', [key]: value })),
    fc.tuple(fc.stringMatching(/^[a-z]{1,10}$/), unstorable(500)).map(([key, value]) => ({ ok: 'v', [key]: value })),
    // A computed key makes `__proto__` an own property, as JSON.parse does, so it goes out in the JSON.
    fc
      .tuple(fc.constantFrom(...RESERVED_KEYS), fc.oneof(fc.string({ maxLength: 20 }), fc.object({ maxDepth: 1 })))
      .map(([key, value]) => ({ ok: 'v', [key]: value })),
  ),
};

/** For each field of the user body's schema, values it must refuse. */
const BAD_USER_FIELDS: Record<string, fc.Arbitrary<unknown>> = {
  name: fc.oneof(
    fc.constantFrom('', ' ', '\t\n', '\u00a0\u2003\u3000'),
    unstorable(200).filter((value) => value.trim().length > 0),
    fc.string({ minLength: 201, maxLength: 600 }).filter((value) => value.trim().length > 200),
    notStrings,
  ),
  email: fc.oneof(
    fc.string().filter((value) => !value.includes('@')),
    fc.constantFrom('a@', '@example.test', 'a@b', 'a b@example.test', 'a@@example.test', '.a@example.test'),
    fc.integer({ min: 310, max: 1000 }).map((length) => `${'a'.repeat(length)}@example.test`),
    fc.tuple(unstorableChar, fc.uuid()).map(([bad, id]) => `fuzz-${bad}${id}@example.test`),
    notStrings,
  ),
};

const validTransaction = fc.record(
  {
    amount: fc.integer({ min: 1, max: 1_000_000 }),
    currency: fc.constantFrom(...CURRENCIES),
    // Any well-formed text is valid, so that a refusal of unstorable text cannot reach it.
    description: fc.string({ unit: 'grapheme', maxLength: 50 }),
    metadata: fc.dictionary(
      fc.stringMatching(/^[a-z]{1,10}$/).filter((key) => !RESERVED_KEYS.includes(key)),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      { maxKeys: 3 },
    ),
  },
  { requiredKeys: ['amount', 'currency'] },
);
const validUser = fc.record({
  name: fc.stringMatching(/^[A-Za-z]{1,20}$/),
  email: fc.uuid().map((id) => `fuzz-${id}@example.test`),
});

/** Bodies that break exactly one rule of a schema: a bad field, an unknown field, a missing field, or no object. */
function badBodies(
  valid: fc.Arbitrary<Record<string, unknown>>,
  badFields: Record<string, fc.Arbitrary<unknown>>,
  required: readonly string[],
): fc.Arbitrary<unknown> {
  const known = new Set(Object.keys(badFields));
  const unknownKey = fc.oneof(
    fc.string().filter((key) => !known.has(key)),
    fc.constantFrom(
      'id',
      'status',
      'balance',
      'created_at',
      'failure',
      'type',
      '__proto__',
      'constructor',
      'prototype',
    ),
  );
  return fc.oneof(
    ...Object.entries(badFields).map(([field, bad]) =>
      fc.tuple(valid, bad).map(([body, value]) => ({ ...body, [field]: value })),
    ),
    fc.tuple(valid, unknownKey, fc.jsonValue({ maxDepth: 2 })).map(([body, key, value]) => ({ ...body, [key]: value })),
    fc.tuple(valid, fc.constantFrom(...required)).map(([body, field]) => {
      const { [field]: _dropped, ...rest } = body;
      return rest;
    }),
    notObjects,
  );
}

/** The three POSTs, each with its caller and a generator of valid bodies. */
function posts(): fc.Arbitrary<{
  path: string;
  auth: Record<string, string>;
  valid: fc.Arbitrary<Record<string, unknown>>;
}> {
  const asUser = { authorization: `Bearer ${alice.api_key}` };
  return fc.constantFrom(
    { path: '/api/v1/deposits', auth: asUser, valid: validTransaction },
    { path: '/api/v1/withdrawals', auth: asUser, valid: validTransaction },
    {
      path: '/api/v1/users',
      auth: { authorization: `Bearer ${ADMIN_KEY}` },
      valid: validUser,
    },
  );
}

function jsonPost(
  path: string,
  auth: Record<string, string>,
  key: string,
  body: string,
  expected: Pick<Case, 'statuses' | 'codes'>,
): Case {
  return {
    method: 'POST',
    path,
    headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': key },
    body,
    ...expected,
  };
}

describe('POST bodies', () => {
  test('every field of every body schema has a generator of bad values', () => {
    assert.deepEqual(Object.keys(transactionBody(CURRENCIES).shape).sort(), Object.keys(BAD_TRANSACTION_FIELDS).sort());
    assert.deepEqual(Object.keys(createUserBody.shape).sort(), Object.keys(BAD_USER_FIELDS).sort());
  });

  test(`deposits and withdrawals: bad fields, unknown fields, missing fields, no object (${80 * BATCH})`, async () => {
    const cases = fc
      .tuple(
        fc.constantFrom('/api/v1/deposits', '/api/v1/withdrawals'),
        badBodies(validTransaction, BAD_TRANSACTION_FIELDS, ['amount', 'currency']),
        fc.uuid(),
      )
      .map(([path, body, key]) =>
        jsonPost(path, { authorization: `Bearer ${alice.api_key}` }, key, JSON.stringify(body), {
          statuses: [400],
          codes: ['validation_error'],
        }),
      );
    await fuzz(cases, 80);
  });

  test(`deposits and withdrawals: numbers JSON.stringify cannot write (${5 * BATCH})`, async () => {
    const cases = fc
      .tuple(
        fc.constantFrom('/api/v1/deposits', '/api/v1/withdrawals'),
        fc.constantFrom(
          '1e400',
          '-1e400',
          '9007199254740993',
          '1E13',
          '-0.0',
          '0e5',
          '1000000000000.5',
          '1'.repeat(40),
        ),
        fc.uuid(),
      )
      .map(([path, amount, key]) =>
        jsonPost(path, { authorization: `Bearer ${alice.api_key}` }, key, `{"amount":${amount},"currency":"USD"}`, {
          statuses: [400],
          codes: ['validation_error'],
        }),
      );
    await fuzz(cases, 5);
  });

  test(`deposits and withdrawals for another user, or for nobody → 404 (${5 * BATCH})`, async () => {
    const cases = fc
      .tuple(
        fc.constantFrom('/api/v1/deposits', '/api/v1/withdrawals'),
        validTransaction,
        fc.oneof(
          fc.constant(bob.id),
          fc.uuid().filter((id) => id !== alice.id),
        ),
        fc.uuid(),
      )
      .map(([path, body, user_id, key]) =>
        jsonPost(path, { authorization: `Bearer ${alice.api_key}` }, key, JSON.stringify({ ...body, user_id }), {
          statuses: [404],
          codes: ['not_found'],
        }),
      );
    await fuzz(cases, 5);
  });

  test(`users: bad fields, unknown fields, missing fields, no object (${30 * BATCH})`, async () => {
    const cases = fc.tuple(badBodies(validUser, BAD_USER_FIELDS, ['name', 'email']), fc.uuid()).map(([body, key]) =>
      jsonPost('/api/v1/users', { authorization: `Bearer ${ADMIN_KEY}` }, key, JSON.stringify(body), {
        statuses: [400],
        codes: ['validation_error'],
      }),
    );
    await fuzz(cases, 30);
  });

  test(`text Postgres cannot store in any string field, or a reserved metadata key → 400 (${20 * BATCH})`, async () => {
    const transaction = fc.oneof(
      unstorable(500).map((description) => ({ description })),
      unstorable(40).map((key) => ({ metadata: { ok: 'v', [key]: 'v' } })),
      unstorable(500).map((value) => ({ metadata: { ok: 'v', key: value } })),
      fc.constantFrom(...RESERVED_KEYS).map((key) => ({ metadata: { ok: 'v', [key]: 'v' } })),
    );
    const user = fc.oneof(
      unstorable(200).map((name) => ({ name: `x${name}` })),
      fc.tuple(unstorableChar, fc.uuid()).map(([bad, id]) => ({ email: `fuzz${bad}-${id}@example.test` })),
    );
    const cases = fc.tuple(posts(), fc.uuid()).chain(([post, key]) =>
      fc.tuple(post.valid, post.path === '/api/v1/users' ? user : transaction).map(([body, bad]) =>
        jsonPost(post.path, post.auth, key, JSON.stringify({ ...body, ...bad }), {
          statuses: [400],
          codes: ['validation_error'],
        }),
      ),
    );
    await fuzz(cases, 20);
  });

  test(`malformed JSON → 400 (${15 * BATCH})`, async () => {
    const malformed = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }).filter((text) => {
        try {
          const parsed: unknown = JSON.parse(text);
          return parsed === null || typeof parsed !== 'object';
        } catch {
          return true;
        }
      }),
      fc.constantFrom('{', '{"amount":', "{'amount': 1}", '{"amount": 1,}', '{"amount": NaN}', '\ufeff{}', 'undefined'),
    );
    const cases = fc
      .tuple(posts(), fc.oneof(malformed), fc.uuid())
      .map(([post, body, key]) =>
        jsonPost(post.path, post.auth, key, body, { statuses: [400], codes: ['malformed_json', 'validation_error'] }),
      );
    const truncated = fc.tuple(posts(), fc.nat(), fc.uuid()).chain(([post, cut, key]) =>
      post.valid.map((body) => {
        const text = JSON.stringify(body);
        return jsonPost(post.path, post.auth, key, text.slice(0, cut % text.length), {
          statuses: [400],
          codes: ['malformed_json'],
        });
      }),
    );
    await fuzz(fc.oneof(cases, truncated), 15);
  });

  test(`a body that is not declared as JSON → 415 (${10 * BATCH})`, async () => {
    const cases = fc
      .tuple(
        posts(),
        fc.constantFrom(
          undefined,
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/xml',
          'text/json',
        ),
        fc.uuid(),
      )
      .chain(([post, type, key]) =>
        post.valid.map((body): Case => ({
          method: 'POST',
          path: post.path,
          headers: { ...post.auth, 'idempotency-key': key, ...(type ? { 'content-type': type } : {}) },
          body: JSON.stringify(body),
          statuses: [415],
          codes: ['unsupported_media_type'],
        })),
      );
    await fuzz(cases, 10);
  });

  test(`deeply nested JSON within the size limit → 400 (${5 * BATCH})`, async () => {
    const nestedArrays = fc
      .oneof(fc.constant(10_000), fc.integer({ min: 1_000, max: 32_000 }))
      .map((depth) => '['.repeat(depth) + ']'.repeat(depth));
    const nestedObjects = fc
      .oneof(fc.constant(10_000), fc.integer({ min: 1_000, max: 10_000 }))
      .map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth));
    const cases = fc
      .tuple(posts(), fc.oneof(nestedArrays, nestedObjects), fc.boolean(), fc.uuid())
      .map(([post, nested, asField, key]) => {
        const field = post.path === '/api/v1/users' ? 'name' : 'metadata';
        const body = asField ? `{"${field}":${nested},"amount":1,"currency":"USD"}` : nested;
        assert.ok(body.length < BODY_SIZE_MAX_BYTES);
        return jsonPost(post.path, post.auth, key, body, { statuses: [400], codes: ['validation_error'] });
      });
    await fuzz(cases, 5);
  });

  test(`bodies over the size limit → 413, with or without a Content-Length (${5 * BATCH})`, async () => {
    const cases = fc
      .tuple(
        posts(),
        fc.oneof(fc.integer({ min: BODY_SIZE_MAX_BYTES + 1, max: 4 * BODY_SIZE_MAX_BYTES }), fc.constant(1_000_000)),
        fc.boolean(),
        fc.uuid(),
      )
      .map(([post, size, chunked, key]) => {
        const body =
          post.path === '/api/v1/users' ? { name: 'x', email: 'big@example.test' } : { amount: 1, currency: 'USD' };
        const text = JSON.stringify({ ...body, description: 'x'.repeat(size) });
        return {
          ...jsonPost(post.path, post.auth, key, text, { statuses: [413], codes: ['payload_too_large'] }),
          chunked,
        };
      });
    await fuzz(cases, 5);
  });
});

describe('Idempotency-Key', () => {
  test(`missing, empty, blank, too long, or not printable ASCII → 400 (${20 * BATCH})`, async () => {
    const badKey = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom('', ' ', '\t', '  \t '),
      fc.string({ minLength: 256, maxLength: 600 }).filter((key) => key.trim().length > 255),
      fc.tuple(printable(50), fc.constantFrom(' ', '\t', '  '), printable(50)).map((parts) => parts.join('')),
      fc
        .tuple(printable(50), fc.integer({ min: 0x80, max: 0xff }), printable(50))
        .map(([head, code, tail]) => head + String.fromCharCode(code) + tail),
    );
    const cases = fc.tuple(posts(), badKey).chain(([post, key]) =>
      post.valid.map((body): Case => ({
        method: 'POST',
        path: post.path,
        headers: {
          ...post.auth,
          'content-type': 'application/json',
          ...(key === undefined ? {} : { 'idempotency-key': key }),
        },
        body: JSON.stringify(body),
        statuses: [400],
        codes: key === undefined ? ['idempotency_key_required'] : ['idempotency_key_invalid'],
      })),
    );
    await fuzz(cases, 20);
  });
});

/** For each query parameter of the list schemas, values they must refuse. */
const BAD_QUERY_VALUES: Record<string, fc.Arbitrary<string>> = {
  limit: fc.oneof(
    fc.integer({ min: 101 }).map(String),
    fc.integer({ max: 0 }).map(String),
    fc.string().filter((value) => !/^\d{1,3}$/.test(value)),
    fc.constantFrom('', '1.5', '1e2', '0x10', ' 5', '+5', '5 ', '00000001', 'NaN', 'Infinity'),
  ),
  cursor: fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ minLength: 201, maxLength: 400 }),
    fc.uint8Array({ maxLength: 140 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
    fc.uint8Array({ maxLength: 140 }).map((bytes) => Buffer.from(bytes).toString('base64')),
    fc
      .jsonValue({ maxDepth: 2 })
      .filter((value) => !(Array.isArray(value) && typeof value[1] === 'string' && UUID.test(value[1])))
      .map((value) => base64url(JSON.stringify(value))),
    // Well-formed cursors at instants Postgres cannot compare: year 0 and before, or after 9999.
    fc
      .tuple(
        fc.oneof(
          fc.date({ min: new Date(-8.64e15), max: new Date('0000-12-31T23:59:59.999Z'), noInvalidDate: true }),
          fc.date({ min: new Date('+010000-01-01T00:00:00.000Z'), max: new Date(8.64e15), noInvalidDate: true }),
        ),
        fc.uuid(),
      )
      .map(([at, id]) => base64url(JSON.stringify([at.toISOString(), id]))),
  ),
  status: fc.oneof(
    fc.string().filter((value) => !STATUSES.includes(value)),
    fc.constantFrom('Pending', 'SUCCEEDED', 'succeeded ', 'cancelled'),
  ),
  currency: fc.oneof(
    fc.string().filter((value) => !/^[A-Z]{3}$/.test(value)),
    fc.constantFrom('usd', 'US', 'USDD', 'U$D'),
  ),
  created_from: badInstants(),
  created_to: badInstants(),
  min_amount: badQueryAmounts(),
  max_amount: badQueryAmounts(),
  type: fc.oneof(
    fc.string().filter((value) => value !== 'deposit' && value !== 'withdrawal'),
    fc.constantFrom('Deposit', 'refund', 'withdrawals'),
  ),
  user_id: fc.oneof(
    fc.string().filter((value) => !UUID.test(value)),
    fc.uuid().map((id) => id.replace(/-/g, '')),
  ),
};

function badInstants(): fc.Arbitrary<string> {
  const hours = fc.integer({ min: 1, max: 14 }).map((hour) => String(hour).padStart(2, '0'));
  return fc.oneof(
    fc.string().filter((value) => Number.isNaN(Date.parse(value))),
    fc.constantFrom(
      'yesterday',
      '2024-01-01',
      '2024-13-01T00:00:00Z',
      '2024-01-32T00:00:00Z',
      '2024-01-01T24:00:01Z',
      '2024-01-01 00:00:00Z',
      '2024-01-01T00:00:00',
      '1700000000',
      '+010000-01-01T00:00:00Z',
      '-000001-01-01T00:00:00Z',
    ),
    // ISO 8601 strings whose instant falls outside the years 1 to 9999 in UTC.
    fc
      .date({ min: new Date(-8.64e15), max: new Date('0000-12-31T23:59:59.999Z'), noInvalidDate: true })
      .map((at) => at.toISOString()),
    hours.map((hour) => `0001-01-01T00:00:00+${hour}:00`),
    hours.map((hour) => `9999-12-31T23:59:59-${hour}:00`),
  );
}

function badQueryAmounts(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.integer({ max: -1 }).map(String),
    fc.bigInt({ min: 10n ** 12n + 1n, max: 10n ** 30n }).map(String),
    fc.string().filter((value) => !/^\d{1,13}$/.test(value)),
    fc.constantFrom('', '1.5', '1e3', '0x10', ' 1', '+1', 'NaN'),
  );
}

describe('query strings', () => {
  function lists() {
    return fc.constantFrom(
      { path: '/api/v1/deposits', known: Object.keys(typedListQuery.shape) },
      { path: '/api/v1/withdrawals', known: Object.keys(typedListQuery.shape) },
      { path: `/api/v1/users/${alice.id}/transactions`, known: Object.keys(historyQuery.shape) },
    );
  }
  type Param = [string, string];
  const validParams = fc.subarray<Param>([
    ['limit', '5'],
    ['currency', 'USD'],
    ['status', 'pending'],
    ['min_amount', '1'],
    ['created_from', '2020-01-01T00:00:00Z'],
  ]);
  const get = (path: string, params: Param[], expected: Pick<Case, 'statuses' | 'codes'>): Case => ({
    method: 'GET',
    path: `${path}?${new URLSearchParams(params).toString()}`,
    headers: { authorization: `Bearer ${alice.api_key}` },
    ...expected,
  });

  test('every parameter of every list schema has a generator of bad values', () => {
    for (const key of [...Object.keys(typedListQuery.shape), ...Object.keys(historyQuery.shape)]) {
      assert.ok(key in BAD_QUERY_VALUES, key);
    }
  });

  test(`a bad value, an unknown parameter, or a repeated one → 400 (${80 * BATCH})`, async () => {
    const badValue = fc
      .constantFrom(...Object.keys(BAD_QUERY_VALUES))
      .chain((key) => BAD_QUERY_VALUES[key]!.map((value): Param[] => [[key, value]]));
    const cases = fc.tuple(lists(), validParams).chain(([list, valid]) => {
      const unknownParam = fc
        .tuple(
          fc.oneof(
            fc.string().filter((key) => !list.known.includes(key)),
            fc.constantFrom('__proto__', 'constructor', 'toString', 'page', 'offset', 'limit[]'),
          ),
          fc.string(),
        )
        .map((pair): Param[] => [pair]);
      const repeated = fc
        .constantFrom<Param>(...valid, ['limit', '5'], ['status', 'failed'])
        .map((pair): Param[] => [pair, pair]);
      return fc
        .oneof(badValue, unknownParam, repeated)
        .map((bad) =>
          get(list.path, [...bad, ...valid], { statuses: [400], codes: ['validation_error', 'invalid_cursor'] }),
        );
    });
    await fuzz(cases, 80);
  });

  test(`NUL or a surrogate, percent-encoded, in any parameter → 400 (${10 * BATCH})`, async () => {
    // Written by hand: URLSearchParams would turn a lone surrogate into U+FFFD before it left.
    const encoded = fc.constantFrom('%00', 'USD%00', '5%00', '%ED%A0%80', '%ED%BF%BF', 'a%C0%80', '%F0%9F');
    const cases = fc.tuple(lists(), encoded).chain(([list, value]) =>
      fc.constantFrom(...list.known).map((key) => ({
        ...get(list.path, [], { statuses: [400], codes: ['validation_error', 'invalid_cursor'] }),
        path: `${list.path}?${key}=${value}`,
      })),
    );
    await fuzz(cases, 10);
  });

  test(`a cursor this API did not issue → 400 (${20 * BATCH})`, async () => {
    const cases = fc
      .tuple(lists(), BAD_QUERY_VALUES.cursor!)
      .map(([list, cursor]) =>
        get(list.path, [['cursor', cursor]], { statuses: [400], codes: ['validation_error', 'invalid_cursor'] }),
      );
    await fuzz(cases, 20);
  });

  test(`another user's list → 404 (${5 * BATCH})`, async () => {
    const cases = fc
      .tuple(fc.constantFrom('/api/v1/deposits', '/api/v1/withdrawals'), fc.oneof(fc.constant(bob.id), fc.uuid()))
      .filter(([, user_id]) => user_id !== alice.id)
      .map(([path, user_id]) => get(path, [['user_id', user_id]], { statuses: [404], codes: ['not_found'] }));
    await fuzz(cases, 5);
  });
});

describe('ids in paths', () => {
  const templates = fc.constantFrom(
    (id: string) => `/api/v1/users/${id}`,
    (id: string) => `/api/v1/users/${id}/balance`,
    (id: string) => `/api/v1/users/${id}/transactions`,
    (id: string) => `/api/v1/deposits/${id}`,
    (id: string) => `/api/v1/withdrawals/${id}`,
  );
  const path = (template: (id: string) => string, id: string, expected: Pick<Case, 'statuses' | 'codes'>): Case => ({
    method: 'GET',
    path: template(id),
    headers: { authorization: `Bearer ${alice.api_key}` },
    ...expected,
  });

  test(`an id that is not a UUID → 400 (${25 * BATCH})`, async () => {
    const notUuid = fc.oneof(
      fc
        .string({ minLength: 1, maxLength: 100 })
        .filter((id) => !UUID.test(id) && id !== '.' && id !== '..')
        .map(encodeURIComponent),
      fc.uuid().map((id) => id.slice(0, -1)),
      fc.uuid().map((id) => `${id}0`),
      fc.uuid().map((id) => id.replace(/-/g, '')),
      fc.uuid().map((id) => encodeURIComponent(`{${id}}`)),
      fc.uuid().map((id) => encodeURIComponent(`urn:uuid:${id}`)),
      fc.constantFrom('%zz', '%', '%E0%A4%A', '%00', '%2F', '%ff%fe', 'null', 'undefined', '0', '-1', '1e3'),
    );
    const cases = fc
      .tuple(templates, notUuid)
      .map(([template, id]) => path(template, id, { statuses: [400], codes: ['validation_error'] }));
    await fuzz(cases, 25);
  });

  test(`a UUID that is nobody's, or not the caller's → 404 (${5 * BATCH})`, async () => {
    const cases = fc
      .tuple(templates, fc.oneof(fc.constant(bob.id), fc.uuid()))
      .filter(([, id]) => id !== alice.id)
      .map(([template, id]) => path(template, id, { statuses: [404], codes: ['not_found'] }));
    await fuzz(cases, 5);
  });
});

describe('GraphQL', () => {
  /** A GraphQL request as a case: statuses it may get (never a 5xx), alice's key unless `auth` says otherwise. */
  const graphqlCase = (body: string, statuses: readonly number[], headers: Record<string, string> = {}): Case => ({
    method: 'POST',
    path: '/graphql',
    headers: { authorization: `Bearer ${alice.api_key}`, 'content-type': 'application/json', ...headers },
    body,
    statuses,
  });

  /**
   * Sends one case and checks GraphQL's shape: JSON with `errors` (each with a catalogue-style code, its
   * status and the request id) or `data`; no stack or source path anywhere in the answer.
   */
  async function checkGraphql(c: Case): Promise<void> {
    const answer = await send(c);
    const seen = `${c.body?.slice(0, 300) ?? ''} → ${answer.status} ${answer.text.slice(0, 300)}`;
    assert.ok(c.statuses.includes(answer.status), `expected ${c.statuses.join(' or ')}: ${seen}`);
    assert.doesNotMatch(answer.text, /\n\s+at |\.[cm]?[jt]s:\d+/, `a stack: ${seen}`);
    let json: { data?: unknown; errors?: { message?: unknown; extensions?: Record<string, unknown> }[] };
    try {
      json = JSON.parse(answer.text) as typeof json;
    } catch {
      assert.fail(`not JSON: ${seen}`);
    }
    assert.ok(json.errors !== undefined || json.data !== undefined, seen);
    for (const error of json.errors ?? []) {
      assert.equal(typeof error.message, 'string', seen);
      assert.match(String(error.extensions?.code), /^[a-z]+(?:_[a-z]+)*$/, seen);
      assert.ok(Number(error.extensions?.status) >= 400 && Number(error.extensions?.status) < 500, seen);
      assert.equal(error.extensions?.request_id, answer.headers.get('x-request-id'), seen);
    }
    assert.equal(answer.headers.get('cache-control'), 'no-store', seen);
  }

  /** Like `fuzz`, with GraphQL's checks: batches in parallel, and nothing written after each. */
  async function fuzzGraphql(cases: fc.Arbitrary<Case>, runs: number): Promise<void> {
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(cases.map(readable), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        await Promise.all(batch.map(checkGraphql));
        sent += batch.length;
        assert.deepEqual(await written(), baseline);
      }),
      { numRuns: runs, endOnFailure: true, ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
    assert.equal(sent, runs * BATCH);
  }

  // Words of the schema and of GraphQL, put together at random: mostly invalid, some valid reads.
  const word = fc.constantFrom(
    '{',
    '}',
    '(',
    ')',
    '[',
    ']',
    ':',
    '!',
    '=',
    '...',
    '|',
    '&',
    '$x',
    '$input',
    '@skip(if: true)',
    '@include(if: $x)',
    'query',
    'mutation',
    'subscription',
    'fragment F on Query',
    '...F',
    'on',
    'me',
    'id',
    'kind',
    'balance',
    'balance(userId: "x")',
    'transactions',
    'transactions(first: 100)',
    'edges',
    'node',
    'cursor',
    'pageInfo',
    'transaction(id: 1)',
    'events',
    'deposit',
    'withdraw',
    'input',
    'amount',
    '__schema',
    '__type(name: "Query")',
    '__typename',
    'fields',
    'ofType',
    'name',
    '"str"',
    '"\\u0000"',
    '"""block"""',
    '1',
    '-1',
    '1e400',
    '0x10',
    'null',
    'true',
    '#comment\n',
    ',',
    '\u0000',
    '\ud800',
    'é',
  );
  const documents = fc.oneof(
    fc.array(word, { maxLength: 60 }).map((words) => words.join(' ')),
    fc.string({ maxLength: 200 }),
    // Nested past any depth limit, wide past the alias limit, or directives past theirs.
    fc.integer({ min: 1, max: 400 }).map((depth) => `${'{ me '.repeat(depth)}${'}'.repeat(depth)}`),
    fc
      .integer({ min: 11, max: 300 })
      .map((n) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: me { id }`).join(' ')} }`),
    fc.integer({ min: 11, max: 300 }).map((n) => `{ me ${'@skip(if: false) '.repeat(n)} { id } }`),
    fc.integer({ min: 1, max: 5 }).map((n) => `{ ...F } fragment F on Query { ${'...F '.repeat(n)} me { id } }`),
  );

  test(`random and hostile documents, variables and bodies → never a 5xx, never a stack (${40 * BATCH})`, async () => {
    const request = fc.oneof(
      fc
        .record(
          {
            query: documents,
            variables: fc.oneof(
              fc.dictionary(fc.constantFrom('x', 'input', 'me', 'id'), fc.jsonValue({ maxDepth: 3 })),
              notObjects,
            ),
            operationName: fc.oneof(fc.string({ maxLength: 20 }), notStrings),
          },
          { requiredKeys: ['query'] },
        )
        .map((body) => JSON.stringify(body)),
      // Not a GraphQL request: a batch, another shape, unknown keys, not JSON at all.
      fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
      fc.tuple(documents, fc.string({ maxLength: 20 })).map(([query, key]) => JSON.stringify({ query, [key]: 1 })),
      fc.string({ maxLength: 200 }),
    );
    // No Idempotency-Key: any mutation among these is refused before it runs, so nothing is written.
    const cases = request.map((body) => graphqlCase(body, [200, 400, 401]));
    await fuzzGraphql(cases, 40);
  });

  test(`deposit and withdraw with one bad input field, under an Idempotency-Key → refused (${40 * BATCH})`, async () => {
    // The REST body's bad values, under GraphQL's names; a null is an absent field there, so not bad.
    const names: Record<string, string> = { user_id: 'userId' };
    const badInput = fc.constantFrom(...Object.keys(BAD_TRANSACTION_FIELDS)).chain((field) =>
      fc
        .tuple(
          validTransaction,
          BAD_TRANSACTION_FIELDS[field]!.filter((value) => value !== null),
        )
        .map(([input, value]) => ({ ...input, [names[field] ?? field]: value })),
    );
    const cases = fc
      .tuple(fc.constantFrom('deposit', 'withdraw'), badInput, printable(64))
      .map(([mutation, input, key]) =>
        graphqlCase(
          JSON.stringify({
            query: `mutation($input: TransactionInput!) { ${mutation}(input: $input) { id amount } }`,
            variables: { input },
          }),
          [200, 400],
          { 'idempotency-key': key },
        ),
      );
    await fuzzGraphql(cases, 40);
  });
});

describe('in total', () => {
  // Runs whatever else ran: every fuzzing test checks its own count, and this one what all of them left.
  test('nothing the fuzzed callers could write was written', async () => {
    assert.deepEqual(await written(), baseline);
  });
});
