import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';

/**
 * One hop between our processes (gateway → bank, gateway → gateway, bank → gateway) on a bounded pool
 * of keep-alive connections: a `node:http` Agent per protocol, with explicit timeouts. `fetch` cost
 * about 4× the client CPU per call (its WHATWG objects, an AbortSignal and a DOMException per call;
 * bench/forward-client.ts), so the hops do not use it.
 */

/** What every hop applies unless its caller says otherwise. */
export const HOP_DEFAULTS = {
  /** A new connection must be up within this long (loopback or one network hop); capped by the whole timeout. */
  connect_timeout_ms: 2_000,
  /**
   * An idle pooled socket is closed after this long, before the 5 s `keepAliveTimeout` of our servers
   * (the gateway's GATEWAY_LIMITS.keep_alive_timeout_ms, the bank's) so that the client, not the
   * server, closes an idle connection; Node also closes it a second before a `Keep-Alive: timeout=N`
   * hint from the server runs out.
   */
  idle_ms: 4_000,
} as const;

export interface HopOptions {
  /** Connections open to one origin at most; further requests wait in the pool's queue (within their timeout). */
  sockets_max: number;
  /** The whole request, from the call (a wait in the queue included) to the last byte of the answer. */
  timeout_ms: number;
  /** Until the answer's headers have arrived; at most `timeout_ms` (its default). */
  response_timeout_ms?: number;
  /** Until a new connection is up; default HOP_DEFAULTS.connect_timeout_ms, at most `timeout_ms`. */
  connect_timeout_ms?: number;
  /** How long a pooled socket may stay idle; default HOP_DEFAULTS.idle_ms. */
  idle_ms?: number;
  /** Resolves host names for new connections (a merchant's webhook checks the address it connects to). */
  lookup?: LookupFunction;
  /**
   * Read the answer's body and drop it (the response's `body` is empty): for a peer that is not ours,
   * whose status is all we need and whose body could be any size.
   */
  discard_body?: boolean;
}

export interface HopRequest {
  method: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** This request's whole timeout instead of the hop's `timeout_ms`. */
  timeout_ms?: number;
  /** Safe to send twice whatever its method (a read carried in a POST); by default GET, HEAD and OPTIONS are. */
  idempotent?: boolean;
}

export interface HopResponse {
  status: number;
  /** Node's parsed headers: lower-case names, repeated ones joined with ', ' (set-cookie aside). */
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Why a hop got no answer:
 * - `connect`: no connection (refused, no route, unknown host): nothing was sent;
 * - `connect_timeout`: no connection within the connect timeout: nothing was sent;
 * - `response_timeout` / `timeout`: no headers, or no whole answer, in time: the request may have arrived;
 * - `reset`: the connection failed once connected (a reset, a close): the request may have arrived —
 *   also on a reused keep-alive socket, which the server may have closed as the request went out;
 * - `aborted`: the hop was closed (the request may have arrived).
 */
export type HopFailure = 'connect' | 'connect_timeout' | 'response_timeout' | 'timeout' | 'reset' | 'aborted';

export class HopError extends Error {
  readonly failure: HopFailure;
  /** The system error's code when there was one (ECONNREFUSED, ECONNRESET, …). */
  readonly code: string | undefined;
  /** The request went out on a pooled socket that had served an earlier one. */
  readonly reused: boolean;
  constructor(
    failure: HopFailure,
    message: string,
    options: { code?: string; reused?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'HopError';
    this.failure = failure;
    this.code = options.code;
    this.reused = options.reused ?? false;
  }

  /** A timeout of any kind (connect, headers, whole request). */
  get timedOut(): boolean {
    return this.failure === 'connect_timeout' || this.failure === 'response_timeout' || this.failure === 'timeout';
  }
}

/** Methods a server must treat as safe to repeat: these alone are sent again after a reset on a reused socket. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);

interface Origin {
  https: boolean;
  hostname: string;
  port: number;
  /** The base's path, without a trailing slash, put before every request's path. */
  prefix: string;
}

export interface Hop {
  /**
   * Sends `init` to `base` + `path` and reads the whole answer. Any status is an answer; no answer is a
   * HopError. A GET, HEAD or OPTIONS whose reused socket was reset before any answer is sent once more on
   * a new connection (within the same timeout); nothing else is repeated.
   */
  request(base: string, path: string, init: HopRequest): Promise<HopResponse>;
  /** Connections open now (in use and idle), for tests and metrics. */
  sockets(): number;
  /** Ends every request in flight and destroys every connection (failure `aborted`, as for later requests). */
  close(): void;
}

export function createHop(options: HopOptions): Hop {
  const timeout_ms = options.timeout_ms;
  const response_timeout_ms = Math.min(options.response_timeout_ms ?? timeout_ms, timeout_ms);
  const connect_timeout_ms = Math.min(options.connect_timeout_ms ?? HOP_DEFAULTS.connect_timeout_ms, timeout_ms);
  const agentOptions = {
    keepAlive: true,
    maxSockets: options.sockets_max,
    maxFreeSockets: options.sockets_max,
    // The most recently used socket first, so that the pool shrinks to what the load needs and the rest idle out.
    scheduling: 'lifo' as const,
    // On a pooled socket: closed after this long idle (Node applies it to free sockets).
    timeout: options.idle_ms ?? HOP_DEFAULTS.idle_ms,
  };
  let http: HttpAgent | undefined;
  let https: HttpsAgent | undefined;
  let closed = false;
  /** How to end each request in flight (or waiting for a socket), for close(). */
  const active = new Set<(error: HopError) => void>();
  const origins = new Map<string, Origin>();

  function originOf(base: string): Origin {
    let origin = origins.get(base);
    if (origin) return origin;
    const url = new URL(base);
    const secure = url.protocol === 'https:';
    origin = {
      https: secure,
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: Number(url.port || (secure ? 443 : 80)),
      prefix: url.pathname.replace(/\/$/, ''),
    };
    if (origins.size < 1000) origins.set(base, origin);
    return origin;
  }

  function once(
    origin: Origin,
    path: string,
    init: HopRequest,
    deadline: number,
    timeout_ms: number,
  ): Promise<HopResponse> {
    return new Promise<HopResponse>((resolve, reject) => {
      const remaining_ms = deadline - performance.now();
      if (remaining_ms <= 0) return reject(new HopError('timeout', `no answer within ${timeout_ms} ms`));
      const headers: Record<string, string | number> = { ...init.headers };
      const body = init.body;
      if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
      else if (!IDEMPOTENT.has(init.method)) headers['content-length'] = 0;
      const request = (origin.https ? httpsRequest : httpRequest)({
        agent: origin.https ? (https ??= new HttpsAgent(agentOptions)) : (http ??= new HttpAgent(agentOptions)),
        hostname: origin.hostname,
        port: origin.port,
        path: origin.prefix + path,
        method: init.method,
        headers,
        ...(options.lookup ? { lookup: options.lookup } : {}),
      });
      let connected = false;
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;
      let responseTimer: NodeJS.Timeout | undefined;
      const fail = (error: HopError) => {
        if (settled) return;
        done();
        reject(error);
        request.destroy();
      };
      const wholeTimer = setTimeout(
        () => fail(new HopError('timeout', `no answer within ${timeout_ms} ms`, { reused: request.reusedSocket })),
        remaining_ms,
      );
      if (response_timeout_ms < remaining_ms) {
        responseTimer = setTimeout(
          () =>
            fail(
              new HopError('response_timeout', `no answer's headers within ${response_timeout_ms} ms`, {
                reused: request.reusedSocket,
              }),
            ),
          Math.min(response_timeout_ms, remaining_ms),
        );
      }
      active.add(fail);
      const done = () => {
        settled = true;
        active.delete(fail);
        clearTimeout(wholeTimer);
        clearTimeout(responseTimer);
        clearTimeout(connectTimer);
      };

      request.on('socket', (socket) => {
        if (!socket.connecting) {
          connected = true;
          return;
        }
        connectTimer = setTimeout(
          () => fail(new HopError('connect_timeout', `no connection within ${connect_timeout_ms} ms`)),
          Math.min(connect_timeout_ms, remaining_ms),
        );
        socket.once('connect', () => {
          connected = true;
          clearTimeout(connectTimer);
        });
      });
      request.on('response', (response) => {
        clearTimeout(responseTimer);
        const chunks: Buffer[] = [];
        if (options.discard_body) response.resume();
        else response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          if (settled) return;
          done();
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) });
        });
        // A body cut short: the connection failed once the answer had begun.
        response.on('error', (error: NodeJS.ErrnoException) =>
          fail(new HopError('reset', `connection failed: ${error.message}`, { code: error.code, cause: error })),
        );
      });
      request.on('error', (error: NodeJS.ErrnoException) => {
        const failure = connected ? 'reset' : 'connect';
        const reused = request.reusedSocket;
        fail(new HopError(failure, `connection failed: ${error.message}`, { code: error.code, reused, cause: error }));
      });
      request.end(body);
    });
  }

  return {
    async request(base, path, init) {
      if (closed) throw new HopError('aborted', 'the connection pool is closed');
      const origin = originOf(base);
      const request_timeout_ms = init.timeout_ms ?? timeout_ms;
      const deadline = performance.now() + request_timeout_ms;
      try {
        return await once(origin, path, init, deadline, request_timeout_ms);
      } catch (error) {
        // The server closed an idle socket as this request went out on it: a request safe to repeat
        // goes once more, on a new connection (the pool hands out no socket that it knows closed).
        const retry =
          error instanceof HopError &&
          error.failure === 'reset' &&
          error.reused &&
          (init.idempotent ?? IDEMPOTENT.has(init.method));
        if (!retry || closed) throw error;
        return once(origin, path, init, deadline, request_timeout_ms);
      }
    },
    sockets() {
      let count = 0;
      for (const agent of [http, https]) {
        if (!agent) continue;
        for (const list of [agent.sockets, agent.freeSockets]) {
          for (const sockets of Object.values(list)) count += sockets?.length ?? 0;
        }
      }
      return count;
    },
    close() {
      closed = true;
      // Requests waiting for a socket too: destroying the agents would leave those to their timeout.
      for (const fail of [...active]) fail(new HopError('aborted', 'the connection pool was closed'));
      http?.destroy();
      https?.destroy();
    },
  };
}
