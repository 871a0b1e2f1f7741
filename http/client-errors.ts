import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody, errors, type ApiError } from './errors.ts';
import { requestIdFrom } from './request-id.ts';

/** What Node's parser or its request timers refused, as the contract's error. */
function clientError(code: string | undefined): ApiError {
  if (code === 'HPE_HEADER_OVERFLOW') return errors.headersTooLarge();
  // Node's own answer to headers or a body that did not arrive within headersTimeout/requestTimeout.
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return errors.requestTimeout();
  return errors.malformedRequest();
}

/**
 * Requests Node refuses before Koa sees them (control characters in a header, headers too large, a
 * client too slow with its headers or its body) still get an answer in the contract's shape, with a
 * request id, instead of a bare status line.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // The request Koa is already answering, when the body was what came too slowly (a Node internal).
    const inFlight = (socket as { _httpMessage?: ServerResponse })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const answer = clientError(error.code);
    // A request Koa already took keeps the id it was given (and logged); one that never reached Koa gets one.
    const given = inFlight?.getHeader('X-Request-ID');
    const requestId = typeof given === 'string' ? given : requestIdFrom(undefined);
    const body = JSON.stringify(errorBody(answer, requestId));
    // Closed once the answer is out, as Node does: a client still trickling a body must not hold the socket.
    socket.end(
      `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-ID: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
      () => socket.destroy(),
    );
  });
}
