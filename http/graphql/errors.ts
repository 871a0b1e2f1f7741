import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from 'koa';
import type { Logger } from '../../logger.ts';
import { toApiError } from '../app.ts';
import { ApiError, errors } from '../errors.ts';
import type { GraphqlContext } from './schema.ts';

/**
 * A GraphQL error's `extensions`: the REST error's code and status, the request id, and what the
 * error adds (`details`, `retry_after`); a retryable error (503, 429) says after how many seconds.
 */
export function errorExtensions(error: ApiError, request_id: string): Record<string, unknown> {
  const retry = error.headers['Retry-After'];
  return {
    code: error.code,
    status: error.status,
    request_id,
    ...(retry !== undefined ? { retry_after: Number(retry) } : {}),
    ...error.fields,
  };
}

/**
 * The body of an error answered before GraphQL ran (authentication, rate limits, the body's size or
 * JSON, the request deadline): GraphQL's shape, `{errors: [{message, extensions}]}`, with no data.
 */
export function graphqlErrorBody(ctx: Context, error: ApiError): Record<string, unknown> {
  return { errors: [{ message: error.message, extensions: errorExtensions(error, ctx.state.requestId) }] };
}

/**
 * The catalogue's error for a GraphQL error, and the message shown: a document or variables GraphQL
 * refused (syntax, validation, the depth and cost limits, a value a type does not accept) is a
 * `validation_error` keeping GraphQL's message, which says what is wrong; a resolver's ApiError is
 * itself; a storage fault is `storage_unavailable`; anything else is `internal_error` with the
 * catalogue's message, logged with its stack, which never leaves the process.
 */
function fromGraphql(error: GraphQLError, log: Logger, request_id: string): { error: ApiError; message: string } {
  const original = error.originalError;
  if (original instanceof ApiError) return { error: original, message: original.message };
  if (original === undefined || original === null || original instanceof GraphQLError) {
    return { error: errors.validationError(), message: error.message };
  }
  const mapped = toApiError(original);
  if (mapped.status >= 500 && mapped.code === errors.internalError.code) {
    log.error({ err: original, request_id, path: error.path }, 'graphql field failed');
  }
  return { error: mapped, message: mapped.message };
}

/**
 * Maps every error of a result to the catalogue (see `fromGraphql`), with its location and path. When
 * nothing ran (no `data`: the document or variables were refused, or the operation failed as a whole)
 * the answer's HTTP status is the error's (the highest of them), with its headers; when data came back
 * the answer is 200 and each error says its own status.
 */
export function catalogueErrors(log: Logger): Plugin<Record<string, unknown>, GraphqlContext> {
  return {
    onResultProcess(payload) {
      const { result, serverContext } = payload;
      if (Array.isArray(result) || Symbol.asyncIterator in result) return;
      const executed = result as ExecutionResult;
      if (!executed.errors?.length) return;
      const request_id = serverContext.koa.state.requestId;
      const whole = !('data' in executed) || executed.data === undefined;
      payload.setResult({
        ...executed,
        errors: executed.errors.map((graphqlError) => {
          const { error, message } = fromGraphql(graphqlError, log, request_id);
          const extensions = errorExtensions(error, request_id);
          return new GraphQLError(message, {
            nodes: graphqlError.nodes,
            source: graphqlError.source,
            positions: graphqlError.positions,
            path: graphqlError.path,
            extensions: whole ? { ...extensions, http: { status: error.status, headers: error.headers } } : extensions,
          });
        }),
      });
    },
  };
}
