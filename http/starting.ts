import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, errors } from './errors.ts';
import { requestIdFrom } from './request-id.ts';

/**
 * The answer while the gateway is starting (listening already, so the in-process bank can call back,
 * but not yet wired): 503 `service_starting` in the contract's shape, with Retry-After and a request id.
 */
export function answerStarting(req: IncomingMessage, res: ServerResponse): void {
  const answer = errors.serviceStarting();
  const requestId = requestIdFrom(req.headers['x-request-id']);
  const body = JSON.stringify(errorBody(answer, requestId));
  res
    .writeHead(answer.status, {
      ...answer.headers,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      'X-Request-ID': requestId,
    })
    .end(body);
}
