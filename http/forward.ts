import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { shardOf } from '../engine/shards.ts';
import type { ShardLeases } from '../engine/shard-leases.ts';
import { createHop, HOP_DEFAULTS, HopError } from '../hop.ts';
import type { Logger } from '../logger.ts';
import { readRawBody } from './body.ts';
import { toApiError } from './app.ts';
import { errors } from './errors.ts';
import { endServerSpan } from './server-spans.ts';
import { ATTRIBUTES as A, endSpan, extractContext, injectContext, SpanKind, startSpan, withSpan } from '../tracing.ts';

/**
 * Where an owner takes the commands other instances forward to it. It is not a route of the public
 * API: an internal middleware answers it before authentication and the rate limits, and only a call
 * signed by another instance gets past it (anything else is a 404, as for a path that does not exist).
 */
export const INTERNAL_PATH = '/internal/v1/commands';
/** The owner's answer headers that the client sees (the edge's own, such as rate limits, stay). */
const PASSED_BACK = ['content-type', 'idempotent-replayed', 'retry-after', 'www-authenticate', 'location'];
const HEADER = 'x-gateway-forwarded';
/** How far a forwarded request's timestamp may be from the receiver's clock. */
const SKEW_S = 60;
/** The route's body (up to the client's limit) and the rest of the command fit in twice the limit. */
const ENVELOPE_OVERHEAD_BYTES = 16 * 1024;

/**
 * What a route asks of an account's owner once the edge has authenticated, rate-limited and validated
 * the request: `kind` names the route's handler (registered with `handle`), `user_id` the account; the
 * rest (the typed command's fields, the idempotency attempt) is the route's own and is sent as JSON.
 */
export interface Command {
  kind: string;
  user_id: string;
}

/** Runs a command on this instance and answers on `ctx` exactly as the route answers a direct request. */
export type CommandHandler<C extends Command = Command> = (ctx: Context, command: C) => Promise<void>;

/** The owner's answer to a forwarded command: its status, body, and the headers the client sees. */
export interface OwnerAnswer {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

/**
 * What a forwarded call carries: the command, the client's request id (the answer and the journal show
 * it) and, when tracing is on, the forwarding span's W3C context (`traceparent`), signed with the rest.
 */
interface Envelope {
  request_id: string;
  command: Command;
  trace?: Record<string, string>;
}
/** The forwarding hop's own bounds (FORWARD_TIMEOUT_MS bounds the whole request and its headers). */
export const FORWARD_HOP = {
  /** Keep-alive connections to one owner at most; further forwarded requests queue, within their timeout. */
  sockets_per_owner_max: 128,
  /** A new connection to an owner must be up within this long (at most FORWARD_TIMEOUT_MS). */
  connect_timeout_ms: HOP_DEFAULTS.connect_timeout_ms,
  /** An idle connection is closed after this long: before the owner's 5 s keepAliveTimeout. */
  idle_ms: HOP_DEFAULTS.idle_ms,
} as const;

export interface ForwarderOptions {
  leases: Pick<ShardLeases, 'shards' | 'owns' | 'ownerOf' | 'refresh'>;
  instance: string;
  /** Signs forwarded requests; every instance shares it (derived from the admin key). */
  secret: string;
  /** The most a forwarded request may take at the owner. */
  timeout_ms: number;
  /**
   * The most a forwarded read waits for the owner's answer before the owner is looked for again (at most
   * `timeout_ms`): the shard lease's length, past which a paused owner has lost its shards to another.
   */
  read_timeout_ms?: number;
  /** How long a request waits for an owner when its shard has none, before 503. */
  wait_ms: number;
  /** The client's body limit (BODY_SIZE_MAX_BYTES): a forwarded command carries at most that much of it. */
  body_max_bytes?: number;
  log: Logger;
}

/**
 * Sends a request for an account owned by another instance to that instance, and its answer back.
 * The receiving edge authenticates, rate-limits and validates the client's request, and sends the
 * owner only the command left to run (idempotency gate, actor, render), signed with the cluster's key
 * (`X-Gateway-Forwarded`): the owner runs none of the edge's middleware for it. A forwarded command is
 * never forwarded again: an instance that got one for a shard it no longer owns answers 503
 * `shard_unavailable` at once, and the sender looks for the owner again, within its own bounded wait;
 * only then does the client get the 503.
 */
export function createForwarder(options: ForwarderOptions) {
  const hop = createHop({
    sockets_max: FORWARD_HOP.sockets_per_owner_max,
    timeout_ms: options.timeout_ms,
    connect_timeout_ms: FORWARD_HOP.connect_timeout_ms,
    idle_ms: FORWARD_HOP.idle_ms,
  });
  const key = createHash('sha256').update(`pgw-forward:${options.secret}`).digest();
  const sign = (parts: string[]) => createHmac('sha256', key).update(parts.join('\n')).digest('base64url');

  /** `from at mac`: the sending instance, when (s), and the MAC of both with the whole body. */
  function signature(at_s: number, body: string): string {
    return `${options.instance} ${at_s} ${sign([options.instance, String(at_s), body])}`;
  }

  /** Whether `value` is a valid signature of `body` by another instance, recent enough; returns that instance. */
  function verify(value: string, body: string): string | undefined {
    const [from, at, mac] = value.split(' ');
    const at_s = Number(at);
    if (!from || !mac || !Number.isInteger(at_s) || Math.abs(Date.now() / 1000 - at_s) > SKEW_S) return undefined;
    const expected = Buffer.from(sign([from, String(at_s), body]));
    const given = Buffer.from(mac);
    return given.length === expected.length && timingSafeEqual(given, expected) ? from : undefined;
  }

  const handlers = new Map<string, CommandHandler>();
  const read_timeout_ms = Math.min(options.read_timeout_ms ?? options.timeout_ms, options.timeout_ms);
  const body_max_bytes = 2 * (options.body_max_bytes ?? 1024 * 1024) + ENVELOPE_OVERHEAD_BYTES;

  /**
   * Sends the command to `owner`: its answer, or `unreachable` when the owner should be looked for
   * again. `read` says whether the client's request only reads (safe to send again after a reset).
   */
  async function relay(
    ctx: Context,
    owner: { id: string; url: string },
    body: string,
    read: boolean,
  ): Promise<OwnerAnswer | 'unreachable'> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-request-id': ctx.state.requestId,
      [HEADER]: signature(Math.floor(Date.now() / 1000), body),
    };
    let response;
    if (!read) ctx.state.writeSent = true;
    try {
      response = await hop.request(owner.url, INTERNAL_PATH, {
        method: 'POST',
        headers,
        body,
        idempotent: read,
        ...(read ? { timeout_ms: read_timeout_ms } : {}),
      });
    } catch (error) {
      const code = error instanceof HopError ? error.code : undefined;
      options.log.warn({ owner: owner.id, err: error, code }, 'forwarding failed');
      // Refused before anything was sent, or a read (safe to repeat): look for the owner again.
      if (code === 'ECONNREFUSED' || read) return 'unreachable';
      // A write that may have reached the owner (a timeout, a reset — also of a reused keep-alive
      // socket as the request went out): its outcome is unknown to us (the key replays it).
      throw errors.outcomeUnknown();
    }
    const answer = response.body;
    if (response.status === 503 && answer.includes(`"${errors.shardUnavailable.code}"`)) return 'unreachable';
    const passed: Record<string, string | string[]> = {};
    for (const name of PASSED_BACK) {
      const value = response.headers[name];
      if (value !== undefined) passed[name] = value;
    }
    return { status: response.status, headers: passed, body: answer };
  }

  /**
   * The answer of the owner of `command.user_id`'s shard when that is another instance; undefined
   * when this instance owns it and should run the command itself. With no owner reachable within
   * `wait_ms`, 503 `shard_unavailable` with Retry-After.
   */
  async function askOwner(ctx: Context, command: Command, read: boolean): Promise<OwnerAnswer | undefined> {
    const shard = shardOf(command.user_id, options.leases.shards);
    if (options.leases.owns(shard)) return undefined;
    const span = startSpan(`POST ${INTERNAL_PATH}`, {
      kind: SpanKind.CLIENT,
      attributes: { [A.command]: command.kind, [A.user_id]: command.user_id, [A.shard]: shard },
    });
    let answer: OwnerAnswer | undefined;
    try {
      answer = await withSpan(span, () => forward(ctx, command, shard, read, span && injectContext({})));
    } finally {
      endSpan(span, !answer || answer.status >= 500, answer ? { [A.status]: answer.status } : undefined);
    }
    return answer;
  }

  /** Relays the command to its shard's owner, looking for the owner again while it moves (bounded). */
  async function forward(
    ctx: Context,
    command: Command,
    shard: number,
    read: boolean,
    trace: Record<string, string> | undefined,
  ): Promise<OwnerAnswer | undefined> {
    const body = JSON.stringify({ request_id: ctx.state.requestId, command, trace } satisfies Envelope);
    let deadline = Date.now() + options.wait_ms;
    let lookedAgain = false;
    for (;;) {
      if (options.leases.owns(shard)) return undefined;
      const owner = options.leases.ownerOf(shard);
      if (owner && owner.id !== options.instance) {
        const answer = await relay(ctx, owner, body, read);
        if (answer !== 'unreachable') return answer;
        // A read the owner did not answer (gone, or paused past its lease): the wait for a new owner
        // starts again once, from now, so that a takeover that happened meanwhile still answers it.
        if (read && !lookedAgain) {
          lookedAgain = true;
          deadline = Math.max(deadline, Date.now() + options.wait_ms);
        }
      }
      if (Date.now() >= deadline) throw errors.shardUnavailable();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await options.leases.refresh().catch(() => undefined);
    }
  }

  /**
   * Runs a forwarded command under a server span of its own, the child of the forwarding instance's
   * span (its context came in the signed body, so it cannot be swapped on the way).
   */
  async function runTraced(
    ctx: Context,
    command: Command,
    shard: number,
    run: CommandHandler,
    trace: Record<string, string> | undefined,
  ): Promise<void> {
    const parent = extractContext(trace ?? {});
    const span = startSpan(
      `POST ${INTERNAL_PATH}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [A.method]: 'POST',
          [A.path]: INTERNAL_PATH,
          [A.command]: command.kind,
          [A.user_id]: command.user_id,
          [A.shard]: shard,
        },
      },
      parent,
    );
    let status: number | undefined;
    try {
      await withSpan(span, () => run(ctx, command), parent);
    } catch (error) {
      status = toApiError(error).status;
      throw error;
    } finally {
      endServerSpan(span, ctx, { instance: options.instance }, status ?? ctx.status);
    }
  }

  return {
    /** Registers how this instance runs the commands of `kind` that other instances forward to it. */
    handle<C extends Command>(kind: C['kind'], run: CommandHandler<C>): void {
      if (handlers.has(kind)) throw new Error(`a handler for ${kind} is registered already`);
      handlers.set(kind, run as CommandHandler);
    },

    /**
     * Answers the forwarded commands at INTERNAL_PATH, ahead of the edge's middleware (nothing of which
     * runs for them): a call without a valid signature, or with a command no route handles, is a 404
     * and changes nothing. A command for a shard this instance no longer owns is 503 `shard_unavailable`.
     */
    serve(): Middleware {
      return async (ctx, next) => {
        if (ctx.path !== INTERNAL_PATH) {
          await next();
          return;
        }
        (ctx as { _matchedRoute?: string })._matchedRoute = INTERNAL_PATH;
        const signed = ctx.get(HEADER);
        if (ctx.method !== 'POST' || !signed) throw errors.notFound({ what: 'route' });
        const raw = (await readRawBody(ctx, body_max_bytes)).toString('utf8');
        const from = verify(signed, raw);
        if (!from) throw errors.notFound({ what: 'route' });
        // Signed by an instance of this cluster: the JSON is what its forwarder wrote.
        const { request_id, command, trace } = JSON.parse(raw) as Envelope;
        const run = handlers.get(command.kind);
        if (!run) throw errors.notFound({ what: 'route' });
        ctx.state.forwardedBy = from;
        if (request_id !== ctx.state.requestId) {
          ctx.state.requestId = request_id;
          ctx.set('X-Request-ID', request_id);
        }
        const shard = shardOf(command.user_id, options.leases.shards);
        if (!options.leases.owns(shard)) throw errors.shardUnavailable();
        await runTraced(ctx, command, shard, run, trace);
      };
    },

    askOwner,

    /**
     * Answers the request from the owner of `command.user_id`'s shard when that is another instance
     * (true), as the owner answered; false when this instance owns it and should run the command
     * itself. The client's method tells a read (safe to send again) from a write (its outcome may be unknown).
     */
    async toOwner(ctx: Context, command: Command): Promise<boolean> {
      const answer = await askOwner(ctx, command, ctx.method === 'GET' || ctx.method === 'HEAD');
      if (!answer) return false;
      ctx.status = answer.status;
      for (const [name, value] of Object.entries(answer.headers)) ctx.set(name, value);
      ctx.body = answer.body;
      return true;
    },

    /** Closes the connections to the other instances (once no request is in flight: at shutdown). */
    close: () => hop.close(),
  };
}

export type Forwarder = ReturnType<typeof createForwarder>;

/**
 * What a route needs of forwarding: `toOwner` before it runs a command (true when the owner, elsewhere,
 * already answered), and `handle` to run the commands forwarded to this instance as it runs its own.
 */
export type Forwarding = Pick<Forwarder, 'toOwner' | 'handle'>;
