import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { ApiError, CATALOGUE, errorBody, errors, type ErrorCode, type ErrorStatus } from './errors.ts';
import { operations, type Access, type Operation } from './openapi-operations.ts';
import { SAMPLE_IDEMPOTENCY_KEY, SAMPLE_REQUEST_ID } from './openapi-samples.ts';
import * as shapes from './response-schemas.ts';
import { parseInput, type InputPart } from './validation.ts';

// The document is generated from the same zod schemas the routes validate with (http/schemas.ts) and
// the response shapes beside them (http/response-schemas.ts); this file adds what zod cannot say:
// who may call, which headers travel, and which errors each operation answers with (their statuses
// from the error catalogue, http/errors.ts).

/** What each error status means in this API; the codes an operation may answer with are listed after. */
const ERROR_MEANINGS: Record<ErrorStatus, string> = {
  400: 'The request is not valid; nothing was changed',
  401: 'No valid credentials',
  403: 'This API key may not do that',
  404: 'Not found, or not visible to this caller (the two are not told apart, so ids cannot be probed)',
  405: 'The path does not take this method',
  408: 'The request did not arrive in time',
  409: 'In conflict with the current state',
  413: 'The body is larger than the configured limit',
  415: 'The body is not application/json',
  421: 'This server does not answer for that Host',
  422: 'Understood but refused',
  426: 'Only a WebSocket handshake is answered here',
  429: 'Too many requests',
  431: 'The headers are too large',
  500: 'Something went wrong on our side',
  503: 'Unavailable for now, or the outcome is not known yet; retry after Retry-After',
};

const SECURITY: Record<Access, NonNullable<RouteConfig['security']>> = {
  anyone: [],
  bank: [],
  caller: [{ bearerAuth: [] }],
  admin: [{ bearerAuth: [] }],
  // Open on the internal port; on the public one the admin key is needed.
  metrics: [{}, { bearerAuth: [] }],
};

const integer = { type: 'integer', minimum: 0 } as const;
const string = { type: 'string' } as const;
const oneOf = (...values: string[]) => ({ type: 'string' as const, enum: values });

const HEADERS = {
  'X-Request-ID': {
    description: "The request's id: the client's own X-Request-ID when it sent a valid one, else a new UUID.",
    schema: string,
  },
  'X-RateLimit-Limit': {
    description: 'Requests allowed per window by the most restrictive limit that counted this request.',
    schema: integer,
  },
  'X-RateLimit-Remaining': { description: 'Requests left in that window.', schema: integer },
  'X-RateLimit-Reset': { description: 'When that window resets, in unix seconds.', schema: integer },
  'RateLimit-Policy': {
    description:
      'Every limit that counted this request (draft-ietf-httpapi-ratelimit-headers), e.g. `"balance";q=10;w=60`.',
    schema: string,
  },
  RateLimit: {
    description: 'What is left of each of those limits and the seconds to its reset, e.g. `"balance";r=3;t=42`.',
    schema: string,
  },
  'X-RateLimit-Status': {
    description: '`degraded`: Redis is down and this instance counted alone; `unavailable`: nothing counted.',
    schema: oneOf('degraded', 'unavailable'),
  },
  'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 1 } },
  'Idempotent-Replayed': {
    description: 'Present when this is the stored answer to an earlier request with the same Idempotency-Key.',
    schema: oneOf('true'),
  },
  'WWW-Authenticate': { description: 'The scheme to authenticate with.', schema: oneOf('Bearer') },
} as const;

type HeaderName = keyof typeof HEADERS;

const RATE_LIMIT_HEADERS: readonly HeaderName[] = [
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Reset',
  'RateLimit-Policy',
  'RateLimit',
  'X-RateLimit-Status',
];

function registerComponents(registry: OpenAPIRegistry): void {
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: "`Authorization: Bearer <key>`: a user's API key (`pgw_…`, shown once at creation) or the admin key.",
  });
  // The rule lives in http/idempotency.ts, which reads the header itself rather than through zod.
  registry.registerComponent('parameters', 'IdempotencyKey', {
    name: 'Idempotency-Key',
    in: 'header',
    required: true,
    description:
      'Makes the POST safe to retry: the same key and body replay the first answer (with `Idempotent-Replayed: true`); ' +
      'the same key with another body is 422 `idempotency_key_reused`. Keys are scoped to the caller and kept at least 24 h.',
    schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[!-~]+$' },
    example: SAMPLE_IDEMPOTENCY_KEY,
  });
  registry.registerComponent('parameters', 'XRequestId', {
    name: 'X-Request-ID',
    in: 'header',
    required: false,
    description:
      'Your id for the request, echoed back and logged; replaced by a UUID when it does not match the pattern.',
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{8,128}$' },
  });
  for (const [name, header] of Object.entries(HEADERS)) registry.registerComponent('headers', name, header);
}

function headers(names: readonly HeaderName[]) {
  return Object.fromEntries(names.map((name) => [name, { $ref: `#/components/headers/${name}` }]));
}

/** The error codes of an operation by status: its own and those the edge adds on its path and method. */
function errorCodes(op: Operation): Map<ErrorStatus, ErrorCode[]> {
  const listed: ErrorCode[] = [];
  const api = op.path.startsWith('/api/v1/');
  if (op.request?.body)
    listed.push('validation_error', 'malformed_json', 'payload_too_large', 'unsupported_media_type');
  if (api && op.method === 'post') {
    listed.push(
      'idempotency_key_required',
      'idempotency_key_invalid',
      'idempotency_key_in_use',
      'idempotency_key_reused',
    );
  }
  if (op.access === 'caller' || op.access === 'admin' || op.access === 'metrics') listed.push('unauthenticated');
  if (op.access === 'admin') listed.push('forbidden');
  listed.push(...(op.errors ?? []));
  if (api) listed.push('rate_limit_unavailable');
  const codes = new Map<ErrorStatus, ErrorCode[]>();
  for (const code of new Set(listed)) {
    const status = CATALOGUE.get(code)!.status;
    codes.set(status, [...(codes.get(status) ?? []), code]);
  }
  return codes;
}

// The parameters of the catalogue's message templates, in the error examples (`what` is the operation's).
const MESSAGE_PARAMETERS = {
  allowed: 'GET, HEAD',
  failing: 'postgres',
  length_max: 255,
  limit_bytes: 65536,
  reason: 'bad_signature',
  retry_after: 42,
} as const;
type MessageParameters = Readonly<Record<string, string | number>>;

/**
 * The 400 the operation answers to an input its own schema refuses — an empty body, else "nope" for
 * its first path or query parameter — with the details the route would list.
 */
function refusedInput(op: Operation): ApiError {
  const json = op.request?.body?.content['application/json'];
  const body = json && 'schema' in json ? json.schema : undefined;
  const parameters: [InputPart, z.ZodType | undefined][] = [
    ['path', op.request?.params],
    ['query', op.request?.query],
  ];
  const [part, schema] = parameters.find(([, given]) => given instanceof z.ZodObject) ?? [];
  try {
    if (body instanceof z.ZodType) parseInput(body, {}, 'body');
    else if (schema instanceof z.ZodObject) parseInput(schema, { [Object.keys(schema.shape)[0]!]: 'nope' }, part);
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  return errors.validationError();
}

/** An example of each code's body, as the gateway answers it on this operation (built by the catalogue). */
function errorExamples(op: Operation, codes: readonly ErrorCode[]) {
  const parameters = { ...MESSAGE_PARAMETERS, what: op.missing ?? 'user' };
  return Object.fromEntries(
    codes.map((code) => {
      // Every entry takes its template's parameters as one object; one without any ignores it.
      const build = CATALOGUE.get(code)! as (params: MessageParameters) => ApiError;
      const error = code === 'validation_error' ? refusedInput(op) : build(parameters);
      return [code, { summary: code, value: errorBody(error, SAMPLE_REQUEST_ID) }];
    }),
  );
}

/** The 429's body, as the rate limits answer it. */
function rateLimitExample() {
  const { retry_after } = MESSAGE_PARAMETERS;
  return errorBody(errors.rateLimitExceeded({ retry_after }).with({ retry_after }), SAMPLE_REQUEST_ID);
}

/** Turns one operation into the library's route: security, parameters, headers and every response. */
function route(op: Operation): RouteConfig {
  const api = op.path.startsWith('/api/v1/');
  const idempotent = api && op.method === 'post';
  const common: HeaderName[] = ['X-Request-ID', ...(api ? RATE_LIMIT_HEADERS : [])];
  const responses: RouteConfig['responses'] = {};
  for (const [status, answer] of Object.entries(op.answers)) {
    const replayable = idempotent ? (['Idempotent-Replayed'] as const) : [];
    responses[status] = { ...answer, headers: headers([...common, ...replayable]) };
  }
  for (const [status, codes] of op.graphql ? [] : errorCodes(op)) {
    const bearer = status === 401 && op.access !== 'bank';
    const extra: HeaderName[] = bearer ? ['WWW-Authenticate'] : status === 503 ? ['Retry-After'] : [];
    // An account's own refusal (a 422) is stored with the key and replayed like a success.
    if (idempotent && status === 422) extra.push('Idempotent-Replayed');
    const meaning = codes.length ? `${ERROR_MEANINGS[status]}: ${codes.join(', ')}.` : `${ERROR_MEANINGS[status]}.`;
    responses[status] = {
      description: meaning,
      content: { 'application/json': { schema: shapes.errorBody, examples: errorExamples(op, codes) } },
      headers: headers([...common, ...extra]),
    };
  }
  // The failed-authentication limit covers every path, the bank's callback included.
  const limited = op.access !== 'anyone' && op.access !== 'bank';
  responses[429] = {
    description: op.graphql
      ? 'Too many failed authentications from this address (this body); a rate limit refuses the request ' +
        "as a whole in GraphQL's shape, with the same status and headers."
      : limited
        ? 'Too many requests (a rate limit, or too many failed authentications from this address).'
        : 'Too many failed authentications (API keys or webhook signatures) from this address.',
    content: { 'application/json': { schema: shapes.rateLimitBody, example: rateLimitExample() } },
    headers: headers([...new Set([...common, ...RATE_LIMIT_HEADERS, 'Retry-After' as const])]),
  };
  const parameters = [
    { $ref: '#/components/parameters/XRequestId' },
    ...(idempotent ? [{ $ref: '#/components/parameters/IdempotencyKey' }] : []),
  ];
  return {
    method: op.method,
    path: op.path,
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    ...(op.description !== undefined ? { description: op.description } : {}),
    security: SECURITY[op.access],
    parameters,
    ...(op.request ? { request: op.request } : {}),
    responses: Object.fromEntries(Object.entries(responses).sort(([a], [b]) => Number(a) - Number(b))),
  };
}

/** Every operation as the library's route: their zod schemas beside their examples, which tests parse. */
export function openApiRoutes(options: { currencies: readonly string[] }): RouteConfig[] {
  return operations(options.currencies).map(route);
}

/** The OpenAPI 3.1 document of the whole API; the currency enum is the configured one. */
export function buildOpenApiDocument(options: { currencies: readonly string[] }) {
  const registry = new OpenAPIRegistry();
  registerComponents(registry);
  for (const config of openApiRoutes(options)) registry.registerPath(config);
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Payment gateway',
      version: '1',
      description:
        'Deposits and withdrawals against a bank, with per-user balances. Amounts are integers of minor units. ' +
        'Every error has the shape `{error, message, details?, request_id}`; every response carries `X-Request-ID`.',
    },
    tags: [
      { name: 'Users', description: 'Accounts of the people who hold money here.' },
      { name: 'Balances and history', description: "A user's balances and transactions." },
      { name: 'Deposits', description: 'Money coming in from the bank.' },
      { name: 'Withdrawals', description: 'Money going out to the bank; held until the bank answers.' },
      { name: 'Events', description: 'Live updates.' },
      { name: 'Admin', description: 'Operator tools; the admin key only.' },
      { name: 'Bank', description: 'Callbacks from the bank, signed per Standard Webhooks.' },
      { name: 'Operations', description: 'Health, metrics and this documentation.' },
    ],
  });
}
