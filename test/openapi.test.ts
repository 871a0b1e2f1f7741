import assert from 'node:assert/strict';
import { after, before, describe, mock, test } from 'node:test';
import Router from '@koa/router';
import Koa from 'koa';
import { Validator } from '@seriousme/openapi-schema-validator';
import { parse, validate } from 'graphql';
import type { z } from 'zod';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, startTestGateway } from './support/gateway.ts';
import { CATALOGUE } from '../http/errors.ts';
import { schema as graphqlSchema } from '../http/graphql/schema.ts';
import { buildOpenApiDocument, openApiRoutes } from '../http/openapi.ts';
import * as shapes from '../http/response-schemas.ts';

// Routes the contract announces that no router serves yet; the document describes them already.
const ANNOUNCED = new Set(['get /metrics']);
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

let gateway: Gateway;
let request: ReturnType<typeof client>;
let routers: Router[];

before(async () => {
  // The gateway does not expose its Koa app. Record every app's request listener, then take the routers
  // mounted on the one app that answers on the gateway's server (the in-process bank has its own).
  const callbacks = mock.method(Koa.prototype as { callback: () => unknown }, 'callback');
  try {
    gateway = await startTestGateway();
  } finally {
    mock.restoreAll();
  }
  const listener = gateway.server.listeners('request')[0];
  const app = callbacks.mock.calls.find((call) => call.result === listener)?.this as Koa | undefined;
  assert.ok(app, "the gateway's Koa app was not found");
  routers = app.middleware.flatMap((middleware) => (middleware as { router?: Router }).router ?? []);
  request = client(gateway.url);
});
after(() => gateway.close());

/** `method path` of every operation in the document. */
function documented(document: any): Set<string> {
  const operations = new Set<string>();
  for (const [path, item] of Object.entries<any>(document.paths)) {
    for (const method of METHODS) if (item[method]) operations.add(`${method} ${path}`);
  }
  return operations;
}

/** `method path` of every route the routers serve, in OpenAPI's path syntax; HEAD is GET's twin. */
function served(all: readonly Router[]): Set<string> {
  const operations = new Set<string>();
  for (const router of all) {
    for (const layer of router.stack) {
      assert.equal(typeof layer.path, 'string', 'a route by RegExp cannot be matched to the document');
      const path = String(layer.path)
        .replace(/:(\w+)/g, '{$1}')
        .replace(/(.)\/$/, '$1');
      for (const method of layer.methods) if (method !== 'HEAD') operations.add(`${method.toLowerCase()} ${path}`);
    }
  }
  return operations;
}

function refs(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) refs(item, found);
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') found.push(value);
      else refs(value, found);
    }
  }
  return found;
}

const allowsNull = (schema: any): boolean =>
  [schema.type ?? []].flat().includes('null') || [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])].some(allowsNull);

/** Every example of a media type: its `example`, and the value of each of its `examples`. */
function examplesOf(media: any): unknown[] {
  return [
    ...('example' in media ? [media.example] : []),
    ...Object.values<any>(media.examples ?? {}).map((e) => e.value),
  ];
}

/** `[where, media type]` of every request body and every answer with content, in the document. */
function contents(document: any): [string, any][] {
  const found: [string, any][] = [];
  for (const operation of documented(document)) {
    const [method, path] = operation.split(' ') as [string, string];
    const { requestBody, responses } = document.paths[path][method];
    for (const [type, media] of Object.entries(requestBody?.content ?? {}))
      found.push([`${operation} body ${type}`, media]);
    for (const [status, answer] of Object.entries<any>(responses)) {
      for (const [type, media] of Object.entries(answer.content ?? {}))
        found.push([`${operation} ${status} ${type}`, media]);
    }
  }
  return found;
}

/** Every value of an example, with the key it is under, however deep. */
function* fields(value: unknown, key = ''): Generator<[string, unknown]> {
  if (Array.isArray(value)) for (const item of value) yield* fields(item, key);
  else if (value && typeof value === 'object') {
    for (const [name, inner] of Object.entries(value)) yield* fields(inner, name);
  } else yield [key, value];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The answer parses with the schema and carries no field the schema does not name. */
function assertShape(schema: z.ZodObject, value: unknown): void {
  const parsed = schema.safeParse(value);
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  const unnamed = Object.keys(value as object).filter((key) => !(key in schema.shape));
  assert.deepEqual(unnamed, [], `fields the document does not describe: ${unnamed.join(', ')}`);
}

describe('the document', () => {
  const document: any = buildOpenApiDocument({ currencies: ['USD', 'EUR', 'JPY'] });

  test('is valid OpenAPI 3.1 for a real validator, and every $ref resolves', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document));
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    assert.equal(validator.version, '3.1');
    for (const ref of new Set(refs(document))) {
      const target = ref
        .replace(/^#\//, '')
        .split('/')
        .reduce<any>((node, key) => node?.[key], document);
      assert.ok(target, `${ref} does not resolve`);
    }
  });

  test('offers the configured currencies, and only them', () => {
    assert.deepEqual(document.components.schemas.TransactionRequest.properties.currency.enum, ['USD', 'EUR', 'JPY']);
  });

  test('requires Idempotency-Key (1 to 255 characters) on every POST under /api/v1, and only there', () => {
    for (const operation of documented(document)) {
      const [method, path] = operation.split(' ') as [string, string];
      const parameters: { $ref?: string }[] = document.paths[path][method].parameters ?? [];
      const keyed = parameters.some((p) => p.$ref === '#/components/parameters/IdempotencyKey');
      assert.equal(keyed, method === 'post' && path.startsWith('/api/v1/'), operation);
    }
    const key = document.components.parameters.IdempotencyKey;
    assert.deepEqual([key.in, key.required, key.schema.minLength, key.schema.maxLength], ['header', true, 1, 255]);
  });

  test('has an example of every request body and of every answer with content, errors included', () => {
    const found = contents(document);
    assert.ok(found.length > 100, `only ${found.length} bodies and answers found`);
    const missing = found.filter(([, media]) => examplesOf(media).length === 0).map(([where]) => where);
    assert.deepEqual(missing, []);
    const key = document.components.parameters.IdempotencyKey;
    assert.match(key.example, new RegExp(key.schema.pattern));
  });

  test('every example is one its own schema accepts, without a field the schema leaves out', () => {
    let checked = 0;
    for (const route of openApiRoutes({ currencies: ['USD', 'EUR', 'JPY'] })) {
      const bodies = Object.entries<any>(route.request?.body?.content ?? {}).map(([type, media]) => [
        'body',
        type,
        media,
      ]);
      const answers = Object.entries<any>(route.responses).flatMap(([status, answer]) =>
        Object.entries<any>(answer.content ?? {}).map(([type, media]) => [status, type, media]),
      );
      for (const [status, type, media] of [...bodies, ...answers]) {
        const where = `${route.method} ${route.path} ${status} ${type}`;
        const schema: z.ZodType = media.schema;
        assert.equal(typeof schema?.safeParse, 'function', `${where}: not a zod schema`);
        for (const example of examplesOf(media)) {
          const parsed = schema.safeParse(example);
          assert.ok(parsed.success, `${where}: ${JSON.stringify(parsed.error?.issues)}`);
          // Objects that are not strict drop unknown fields: what is left must be the whole example.
          assert.deepEqual(parsed.data, example, `${where}: a field the schema does not describe`);
          checked += 1;
        }
      }
    }
    assert.ok(checked > 150, `only ${checked} examples checked`);
  });

  test("error examples are the catalogue's codes for their status; ids are UUIDv7, amounts whole minor units", () => {
    for (const [where, media] of contents(document)) {
      const status = Number(where.split(' ')[2]);
      for (const example of examplesOf(media) as any[]) {
        if (status >= 400 && example.error) {
          assert.equal(CATALOGUE.get(example.error)?.status, status, `${where}: ${example.error}`);
        }
        for (const [key, value] of fields(example)) {
          // Request ids are the gateway's random UUIDs; every other id is a time-ordered UUIDv7.
          if (typeof value === 'string' && UUID.test(value) && key !== 'request_id') {
            assert.equal(UUID.exec(value)?.[1], '7', `${where}: ${key} ${value}`);
          }
          if (['amount', 'available', 'held'].includes(key)) assert.ok(Number.isSafeInteger(value), `${where}: ${key}`);
        }
      }
    }
  });

  test("the GraphQL operation's request examples are documents the GraphQL schema accepts", () => {
    const body = document.paths['/graphql'].post.requestBody.content['application/json'];
    const examples = Object.values<{ value: { query: string } }>(body.examples);
    assert.ok(examples.length >= 2);
    for (const { value } of examples) assert.deepEqual(validate(graphqlSchema, parse(value.query)), [], value.query);
  });

  test('keeps every nullable field nullable, and no other', () => {
    for (const schema of Object.values(shapes)) {
      const id = schema.meta()?.id;
      if (!id || !('shape' in schema)) continue;
      for (const [name, field] of Object.entries<z.ZodType>(schema.shape)) {
        const property: unknown = document.components.schemas[id].properties[name];
        assert.equal(allowsNull(property), field.safeParse(null).success, `${id}.${name}`);
      }
    }
  });
});

describe('the gateway', () => {
  test('serves no route the document leaves out; the document lists only announced routes besides', async () => {
    const response = await request('GET', '/openapi.json');
    const inDocument = documented(response.json);
    const inRouters = served(routers);
    assert.ok(inRouters.size >= 15, `only ${inRouters.size} routes found: the routers were not recorded`);
    assert.deepEqual([...inRouters].filter((operation) => !inDocument.has(operation)).sort(), []);
    const unserved = [...inDocument].filter((operation) => !inRouters.has(operation));
    assert.deepEqual(unserved.filter((operation) => !ANNOUNCED.has(operation)).sort(), []);
  });

  test('GET /openapi.json is the JSON document', async () => {
    const spec = await request('GET', '/openapi.json');
    assert.equal(spec.status, 200);
    assert.match(spec.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(spec.json.openapi, '3.1.0');
    assert.equal((await new Validator().validate(spec.json)).valid, true);
  });

  test('GET /docs is Swagger UI from files of this origin, under a policy that refuses inline script', async () => {
    const page = await request('GET', '/docs');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const files = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual(files, ['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/docs.js']);
    assert.doesNotMatch(page.text, /<style|\sstyle=|<script(?![^>]*\ssrc=)|\son[a-z]+=/i);
    const policy = page.headers.get('content-security-policy')?.split('; ') ?? [];
    assert.ok(policy.includes("script-src 'self'"), policy.join('; '));
    assert.ok(policy.includes("connect-src 'self'"), policy.join('; '));

    const types = {
      'swagger-ui.css': /^text\/css/,
      'swagger-ui-bundle.js': /^text\/javascript/,
      'docs.js': /^text\/javascript/,
    };
    for (const [file, type] of Object.entries(types)) {
      const served = await request('GET', `/docs/${file}`);
      assert.equal(served.status, 200, file);
      assert.match(served.headers.get('content-type') ?? '', type, file);
      assert.ok(served.text.length > 0, file);
    }
    const init = (await request('GET', '/docs/docs.js')).text;
    assert.match(init, /url: '\/openapi\.json'/);
    assert.match(init, /validatorUrl: null/, 'the validator badge would call validator.swagger.io');
    for (const path of [
      '/docs/nope.js',
      '/docs/..%2Fpackage.json',
      '/docs/index.html',
      '/docs/swagger-ui.js',
      '/docs/swagger-ui-bundle.js.map',
    ]) {
      assert.equal((await request('GET', path)).status, 404, path);
    }
  });

  test("answers in the document's shapes", async () => {
    const created = await request('POST', '/api/v1/users', {
      key: ADMIN_KEY,
      body: { name: 'Shape', email: `shape-${crypto.randomUUID()}@example.test` },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(created.status, 201);
    assertShape(shapes.createdUser, created.json);
    const user = created.json as { id: string; api_key: string };
    assertShape(shapes.user, (await request('GET', `/api/v1/users/${user.id}`, { key: user.api_key })).json);

    const deposit = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 1050, currency: 'USD', metadata: { order: '1' } },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(deposit.status, 202);
    assertShape(shapes.transaction, deposit.json);
    const shown = await request('GET', `/api/v1/deposits/${deposit.json.id}`, { key: user.api_key });
    assertShape(shapes.transactionWithEvents, shown.json);
    for (const event of shown.json.events) assertShape(shapes.transactionEvent, event);

    for (const path of ['/api/v1/deposits', `/api/v1/users/${user.id}/transactions`]) {
      const page = await request('GET', path, { key: user.api_key });
      assertShape(shapes.transactionPage, page.json);
      for (const item of page.json.data) assertShape(shapes.transaction, item);
    }
    assertShape(shapes.balance, (await request('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key })).json);
    assertShape(shapes.deadLetterPage, (await request('GET', '/api/v1/admin/dead-letters', { key: ADMIN_KEY })).json);

    const health = await request('GET', '/health');
    assertShape(health.status === 200 ? shapes.health : shapes.healthUnavailable, health.json);
    const refused = await request('GET', `/api/v1/users/${user.id}`);
    assert.equal(refused.status, 401);
    assertShape(shapes.errorBody, refused.json);
    const invalid = await request('GET', '/api/v1/deposits?limit=0', { key: user.api_key });
    assert.equal(invalid.status, 400);
    assertShape(shapes.errorBody, invalid.json);
  });
});
