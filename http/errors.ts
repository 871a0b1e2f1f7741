import type { Refusal } from '../engine/account-actor.ts';
import type { Rejection, RejectionCode } from '../engine/rejections.ts';

/** An error the API answers with: a status, a snake_case code and a message meant for people. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Fields the body carries beside `error` and `message` (`details`, `retry_after`). */
  readonly fields: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { fields?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = options.fields ?? {};
    this.headers = options.headers ?? {};
  }

  /** The same error with more body fields: what this occurrence adds to its catalogue entry. */
  with(fields: Record<string, unknown>): ApiError {
    return new ApiError(this.status, this.code, this.message, {
      fields: { ...this.fields, ...fields },
      headers: { ...this.headers },
    });
  }
}

/** The parameter names in a template: `'Use one of: {allowed}.'` has `allowed`. */
type Slot<T extends string> = T extends `${string}{${infer Name}}${infer Rest}` ? Name | Slot<Rest> : never;
type Params<T extends string> = [Slot<T>] extends [never] ? [] : [params: Readonly<Record<Slot<T>, string | number>>];

/** An entry of the catalogue: called, it builds its error; its code, status, message and headers are data. */
export interface ErrorEntry<C extends string = string, S extends number = number, T extends string = string> {
  (...params: Params<T>): ApiError;
  readonly code: C;
  readonly status: S;
  /** The message, `{name}` standing for a parameter. */
  readonly message: string;
  /** Headers every answer of this entry carries, templated like the message. */
  readonly headers: Readonly<Record<string, string>>;
}

const fill = (template: string, params: Readonly<Record<string, string | number>>) =>
  template.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name]));

/**
 * Defines a catalogue entry. Only this file and the bank's own catalogue (simulator/bank-errors.ts)
 * call it; every other file refers to an entry by name (errors.test.ts scans for the exceptions).
 */
export function defineError<
  const C extends string,
  const S extends number,
  const M extends string,
  const H extends Record<string, string> = Record<never, string>,
>(status: S, code: C, message: M, headers?: H): ErrorEntry<C, S, M | H[keyof H]> {
  const templates: Readonly<Record<string, string>> = headers ?? {};
  const build = (...args: unknown[]) => {
    const params = (args[0] ?? {}) as Record<string, string | number>;
    const filled = Object.entries(templates).map(([name, value]) => [name, fill(value, params)] as const);
    return new ApiError(status, code, fill(message, params), { headers: Object.fromEntries(filled) });
  };
  return Object.assign(build, { code, status, message, headers: templates });
}

const RETRY_SOON = { 'Retry-After': '1' } as const;

/**
 * Every error the gateway can answer, in one catalogue (the bank simulator, another service, keeps its
 * own). Each entry is named after its code in camelCase. Messages are for people; codes are the contract.
 */
export const errors = {
  // 400: the request is not valid; nothing was changed.
  validationError: defineError(400, 'validation_error', 'The request is not valid.'),
  malformedJson: defineError(400, 'malformed_json', 'The request body is not valid JSON.'),
  malformedRequest: defineError(400, 'malformed_request', 'The request is not valid HTTP.'),
  /** A client error a library raised and exposed itself (none in this stack does today). */
  badRequest: defineError(400, 'bad_request', '{reason}'),
  idempotencyKeyRequired: defineError(
    400,
    'idempotency_key_required',
    'Send an Idempotency-Key header with every POST.',
  ),
  idempotencyKeyInvalid: defineError(
    400,
    'idempotency_key_invalid',
    'The Idempotency-Key must be 1 to {length_max} printable ASCII characters.',
  ),
  invalidCursor: defineError(400, 'invalid_cursor', 'The cursor is not one this API returned.'),
  // 401, 403: who is asking.
  unauthenticated: defineError(401, 'unauthenticated', 'Send a valid API key as "Authorization: Bearer <key>".', {
    'WWW-Authenticate': 'Bearer',
  }),
  invalidSignature: defineError(401, 'invalid_signature', 'The webhook signature was refused ({reason}).'),
  forbidden: defineError(403, 'forbidden', 'This API key may not do that.'),
  /** A page of another origin opening the WebSocket (cross-site WebSocket hijacking): refused before the upgrade. */
  originNotAllowed: defineError(403, 'origin_not_allowed', 'Pages from this origin may not open a WebSocket here.'),
  // 404–431: what was asked for, and how.
  notFound: defineError(404, 'not_found', 'The {what} does not exist.'),
  methodNotAllowed: defineError(405, 'method_not_allowed', 'Use one of: {allowed}.', { Allow: '{allowed}' }),
  requestTimeout: defineError(
    408,
    'request_timeout',
    'The request was not received in time; send it again, without pausing.',
  ),
  idempotencyKeyInUse: defineError(
    409,
    'idempotency_key_in_use',
    'A request with this Idempotency-Key is still being processed; retry shortly.',
  ),
  emailTaken: defineError(409, 'email_taken', 'A user with this email already exists.'),
  alreadyRetried: defineError(409, 'already_retried', 'This dead letter was already retried.'),
  transactionNotOpen: defineError(409, 'transaction_not_open', 'The transaction is already final.'),
  transactionExists: defineError(409, 'transaction_exists', 'A transaction with this id already exists.'),
  tooManyApiKeys: defineError(
    409,
    'too_many_api_keys',
    'This user already holds {active_max} active API keys; revoke one before adding another.',
  ),
  payloadTooLarge: defineError(413, 'payload_too_large', 'The request body is larger than {limit_bytes} bytes.'),
  unsupportedMediaType: defineError(415, 'unsupported_media_type', 'Send the request body as application/json.'),
  hostNotAllowed: defineError(
    421,
    'host_not_allowed',
    'This server does not answer for that Host; use its own address.',
  ),
  // 422: understood, but refused (the account's refusals are stored with the key and replayed).
  idempotencyKeyReused: defineError(
    422,
    'idempotency_key_reused',
    'This Idempotency-Key was already used with a different request.',
  ),
  insufficientFunds: defineError(422, 'insufficient_funds', 'The amount is more than the available balance.'),
  balanceLimitExceeded: defineError(
    422,
    'balance_limit_exceeded',
    'This deposit would take the balance past its limit.',
  ),
  /** `GET /api/v1/ws` as plain HTTP: it answers only a WebSocket handshake. */
  upgradeRequired: defineError(426, 'upgrade_required', 'Open a WebSocket here (Upgrade: websocket).', {
    Upgrade: 'websocket',
  }),
  rateLimitExceeded: defineError(429, 'rate_limit_exceeded', 'Too many requests. Please try again later.', {
    'Retry-After': '{retry_after}',
  }),
  headersTooLarge: defineError(431, 'headers_too_large', 'The request headers are too large.'),
  // 5xx: our side; a 503 is worth retrying after Retry-After.
  internalError: defineError(500, 'internal_error', 'Something went wrong on our side; it has been logged.'),
  /** `GET /health` when a required dependency fails. */
  serviceUnavailable: defineError(503, 'service_unavailable', 'Failing: {failing}.'),
  serviceStarting: defineError(503, 'service_starting', 'The service is starting; retry in a moment.', RETRY_SOON),
  /** This instance is draining before it stops; another instance (or this one, restarted) will answer. */
  shuttingDown: defineError(503, 'shutting_down', 'This instance is shutting down; retry shortly.', {
    ...RETRY_SOON,
    Connection: 'close',
  }),
  /** Postgres (or Redis) could not be reached, or did not answer within the request's deadline. */
  storageUnavailable: defineError(
    503,
    'storage_unavailable',
    'Storage is unavailable right now; retry shortly.',
    RETRY_SOON,
  ),
  /** A write was sent on its way (actor, owner) and its outcome is not known yet. */
  outcomeUnknown: defineError(
    503,
    'outcome_unknown',
    'The request was not confirmed in time. Retry with the same Idempotency-Key to learn its outcome.',
    RETRY_SOON,
  ),
  accountBusy: defineError(
    503,
    'account_busy',
    'This account has too many requests waiting; retry shortly.',
    RETRY_SOON,
  ),
  shardUnavailable: defineError(
    503,
    'shard_unavailable',
    'This account is moving between instances; retry shortly.',
    RETRY_SOON,
  ),
  rateLimitUnavailable: defineError(
    503,
    'rate_limit_unavailable',
    'Rate limits cannot be checked right now; try again shortly.',
    RETRY_SOON,
  ),
  streamLimitReached: defineError(
    503,
    'stream_limit_reached',
    'Too many event streams are open; close one or retry shortly.',
    { 'Retry-After': '5' },
  ),
  /** The dashboard could not reach the public API to forward a retry. */
  gatewayUnreachable: defineError(
    503,
    'gateway_unreachable',
    'The public API did not answer; retry shortly.',
    RETRY_SOON,
  ),
} as const;

type Entries = (typeof errors)[keyof typeof errors];
export type ErrorCode = Entries['code'];
export type ErrorStatus = Entries['status'];

/** The catalogue by code. */
export const CATALOGUE: ReadonlyMap<ErrorCode, Entries> = new Map(
  Object.values(errors).map((entry) => [entry.code, entry]),
);

/** The contract's error body. */
export function errorBody(error: ApiError, requestId: string): Record<string, unknown> {
  return { error: error.code, message: error.message, ...error.fields, request_id: requestId };
}

/** The one map from the account's rejections (engine/rejections.ts) to HTTP. */
const REJECTION_ERRORS: Record<RejectionCode, ErrorEntry<ErrorCode>> = {
  insufficient_funds: errors.insufficientFunds,
  balance_limit_exceeded: errors.balanceLimitExceeded,
  transaction_exists: errors.transactionExists,
};

/** The answer to a rejection of the account. */
export function rejectionError(rejection: Rejection): ApiError {
  return REJECTION_ERRORS[rejection.code]();
}

/**
 * The one map from an actor's refusal to HTTP: all are retryable, none is the client's fault. A key
 * the journal found taken whose record cannot be read back is a storage fault like any other.
 */
const REFUSAL_ERRORS: Record<Refusal, ErrorEntry<ErrorCode>> = {
  busy: errors.accountBusy,
  timeout: errors.outcomeUnknown,
  uncertain: errors.outcomeUnknown,
  not_owned: errors.shardUnavailable,
  stale_epoch: errors.shardUnavailable,
  failed: errors.storageUnavailable,
  idempotency_conflict: errors.storageUnavailable,
};

/** The answer to an actor's refusal. */
export function refusalError(reason: Refusal): ApiError {
  return REFUSAL_ERRORS[reason]();
}

/** The codes an operation that asks an account's actor may answer with (the OpenAPI document lists them). */
export const ACTOR_REFUSAL_CODES: readonly ErrorCode[] = [
  ...new Set(Object.values(REFUSAL_ERRORS).map((entry) => entry.code)),
];

/** The codes of the account's rejections, for the OpenAPI document. */
export const rejectionCode = (code: RejectionCode): ErrorCode => REJECTION_ERRORS[code].code;

/**
 * The error a stored or forwarded answer carries (a body `errorBody` wrote), back as an ApiError: its
 * catalogue code, status and message, the fields it added (`details`, `retry_after`, the request id
 * of the request that first answered) and the headers it came with. A body that is not one of ours
 * is an internal error.
 */
export function errorFromAnswer(answer: {
  status: number;
  body: string;
  headers?: Readonly<Record<string, string | string[]>>;
}): ApiError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    return errors.internalError();
  }
  const { error: code, message, ...fields } = (parsed ?? {}) as Record<string, unknown>;
  const entry = CATALOGUE.get(code as ErrorCode);
  if (!entry || entry.status !== answer.status || typeof message !== 'string') return errors.internalError();
  const headers: Record<string, string> = {};
  for (const name of ['Retry-After', 'WWW-Authenticate']) {
    const value = answer.headers?.[name.toLowerCase()];
    if (typeof value === 'string') headers[name] = value;
  }
  return new ApiError(entry.status, entry.code, message, { fields, headers });
}
