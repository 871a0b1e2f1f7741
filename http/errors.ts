/** An error the API answers with: a status, a snake_case code and a message meant for people. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: readonly unknown[] | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: readonly unknown[]; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }
}

/** Every error the edge itself raises, in one catalogue. Domain rejections map in `rejections.ts`. */
export const errors = {
  notFound: (what = 'resource') => new ApiError(404, 'not_found', `The ${what} does not exist.`),
  routeNotFound: () => new ApiError(404, 'not_found', 'No such route.'),
  methodNotAllowed: (allowed: string) =>
    new ApiError(405, 'method_not_allowed', `Use one of: ${allowed}.`, { headers: { Allow: allowed } }),
  malformedRequest: () => new ApiError(400, 'malformed_request', 'The request is not valid HTTP.'),
  headersTooLarge: () => new ApiError(431, 'headers_too_large', 'The request headers are too large.'),
  requestTimeout: () =>
    new ApiError(408, 'request_timeout', 'The request was not received in time; send it again, without pausing.'),
  hostNotAllowed: () =>
    new ApiError(421, 'host_not_allowed', 'This server does not answer for that Host; use its own address.'),
  malformedJson: () => new ApiError(400, 'malformed_json', 'The request body is not valid JSON.'),
  bodyTooLarge: (limitBytes: number) =>
    new ApiError(413, 'payload_too_large', `The request body is larger than ${limitBytes} bytes.`),
  unsupportedMediaType: () => new ApiError(415, 'unsupported_media_type', 'Send the request body as application/json.'),
  validation: (details: readonly unknown[]) =>
    new ApiError(400, 'validation_error', 'The request is not valid.', { details }),
  unauthenticated: () =>
    new ApiError(401, 'unauthenticated', 'Send a valid API key as "Authorization: Bearer <key>".', {
      headers: { 'WWW-Authenticate': 'Bearer' },
    }),
  forbidden: () => new ApiError(403, 'forbidden', 'This API key may not do that.'),
  conflict: (code: string, message: string) => new ApiError(409, code, message),
  internal: () => new ApiError(500, 'internal_error', 'Something went wrong on our side; it has been logged.'),
  starting: () =>
    new ApiError(503, 'service_starting', 'The service is starting; retry in a moment.', {
      headers: { 'Retry-After': '1' },
    }),
  unavailable: (code: string, message: string, retryAfterSeconds = 1) =>
    new ApiError(503, code, message, { headers: { 'Retry-After': String(retryAfterSeconds) } }),
  /** Postgres (or Redis) could not be reached, or did not answer within the request's deadline. */
  storageUnavailable: () =>
    errors.unavailable('storage_unavailable', 'Storage is unavailable right now; retry shortly.'),
  /** A write was sent on its way (actor, owner) and its outcome is not known yet. */
  outcomeUnknown: () =>
    errors.unavailable(
      'outcome_unknown',
      'The request was not confirmed in time. Retry with the same Idempotency-Key to learn its outcome.',
    ),
  /** This instance is draining before it stops; another instance (or this one, restarted) will answer. */
  shuttingDown: () =>
    new ApiError(503, 'shutting_down', 'This instance is shutting down; retry shortly.', {
      headers: { 'Retry-After': '1', Connection: 'close' },
    }),
} as const;

/** The contract's error body. */
export function errorBody(error: ApiError, requestId: string): Record<string, unknown> {
  return {
    error: error.code,
    message: error.message,
    ...(error.details ? { details: error.details } : {}),
    request_id: requestId,
  };
}

/** The one map from an actor's refusal to HTTP: all are retryable, none is the client's fault. */
export function refusalError(reason: string): ApiError {
  switch (reason) {
    case 'busy':
      return errors.unavailable('account_busy', 'This account has too many requests waiting; retry shortly.');
    case 'timeout':
    case 'uncertain':
      return errors.outcomeUnknown();
    case 'not_owned':
    case 'stale_epoch':
      return errors.unavailable('shard_unavailable', 'This account is moving between instances; retry shortly.');
    default:
      return errors.unavailable('storage_unavailable', 'The journal could not be written; retry shortly.');
  }
}
