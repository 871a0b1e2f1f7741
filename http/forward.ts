import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { shardOf } from '../engine/shards.ts';
import type { ShardLeases } from '../engine/shard-leases.ts';
import { createHop, HOP_DEFAULTS, HopError } from '../hop.ts';
import type { Logger } from '../logger.ts';
import { errors } from './errors.ts';

/** The request headers an owner needs to answer as if the client had called it. */
const PASSED_ON = [
  'authorization',
  'content-type',
  'idempotency-key',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'user-agent',
];
/** The owner's answer headers that the client sees (the edge's own, such as rate limits, stay). */
const PASSED_BACK = ['content-type', 'idempotent-replayed', 'retry-after', 'www-authenticate', 'location'];
const HEADER = 'x-gateway-forwarded';
/** How far a forwarded request's timestamp may be from the receiver's clock. */
const SKEW_S = 60;
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
  /** How long a request waits for an owner when its shard has none, before 503. */
  wait_ms: number;
  log: Logger;
}

/**
 * Sends a request for an account owned by another instance to that instance, and its answer back.
 * The receiving edge authenticates and rate-limits the client; the owner authenticates again (with the
 * client's own credentials) but, trusting the signed `X-Gateway-Forwarded`, does not count it twice.
 * A forwarded request is never forwarded again: an instance that got one for a shard it no longer
 * owns answers 503 `shard_unavailable` at once, and the sender looks for the owner again, within its
 * own bounded wait; only then does the client get the 503.
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

  function signature(ctx: Context, at_s: number): string {
    return sign([options.instance, String(at_s), ctx.method, ctx.originalUrl, ctx.state.requestId]);
  }

  /** Whether `value` is a valid signature of this request by another instance; returns that instance. */
  function verify(ctx: Context, value: string): string | undefined {
    const [from, at, mac] = value.split(' ');
    const at_s = Number(at);
    if (!from || !mac || !Number.isInteger(at_s) || Math.abs(Date.now() / 1000 - at_s) > SKEW_S) return undefined;
    const expected = Buffer.from(sign([from, String(at_s), ctx.method, ctx.originalUrl, ctx.state.requestId]));
    const given = Buffer.from(mac);
    return given.length === expected.length && timingSafeEqual(given, expected) ? from : undefined;
  }

  type Relayed = 'answered' | 'unreachable';

  async function relay(ctx: Context, owner: { id: string; url: string }): Promise<Relayed> {
    const at_s = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'x-request-id': ctx.state.requestId,
      [HEADER]: `${options.instance} ${at_s} ${signature(ctx, at_s)}`,
    };
    for (const name of PASSED_ON) {
      const value = ctx.get(name);
      if (value) headers[name] = value;
    }
    const body = ctx.method === 'GET' || ctx.method === 'HEAD' ? undefined : ctx.state.rawBody;
    let response;
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') ctx.state.writeSent = true;
    try {
      // Redirects are not followed: the owner's 3xx and its Location go back as they are.
      response = await hop.request(owner.url, ctx.originalUrl, { method: ctx.method, headers, body });
    } catch (error) {
      const code = error instanceof HopError ? error.code : undefined;
      options.log.warn({ owner: owner.id, err: error, code }, 'forwarding failed');
      // Refused before anything was sent, or a read (safe to repeat): look for the owner again.
      if (code === 'ECONNREFUSED' || ctx.method === 'GET') return 'unreachable';
      // A write that may have reached the owner (a timeout, a reset — also of a reused keep-alive
      // socket as the request went out): its outcome is unknown to us (the key replays it).
      throw errors.outcomeUnknown();
    }
    const answer = response.body;
    if (response.status === 503 && answer.includes(`"${errors.shardUnavailable.code}"`)) return 'unreachable';
    ctx.status = response.status;
    for (const name of PASSED_BACK) {
      const value = response.headers[name];
      if (value !== undefined) ctx.set(name, value);
    }
    ctx.body = answer;
    return 'answered';
  }

  return {
    /** Marks requests another instance forwarded (signature checked), so the edge does not count them twice. */
    recognise(): Middleware {
      return async (ctx, next) => {
        const value = ctx.get(HEADER);
        if (value) ctx.state.forwardedBy = verify(ctx, value);
        await next();
      };
    },

    /**
     * Answers the request from the owner of `user_id`'s shard when that is another instance (true);
     * false when this instance owns it and should answer itself. With no owner reachable within
     * `wait_ms`, 503 `shard_unavailable` with Retry-After.
     */
    async toOwner(ctx: Context, user_id: string): Promise<boolean> {
      const shard = shardOf(user_id, options.leases.shards);
      const deadline = Date.now() + options.wait_ms;
      for (;;) {
        if (options.leases.owns(shard)) return false;
        // Forwarded here, but the shard moved on: the sender, which waits, looks for the owner again.
        if (ctx.state.forwardedBy) throw errors.shardUnavailable();
        const owner = options.leases.ownerOf(shard);
        if (owner && owner.id !== options.instance && (await relay(ctx, owner)) === 'answered') return true;
        if (Date.now() >= deadline) throw errors.shardUnavailable();
        await new Promise((resolve) => setTimeout(resolve, 100));
        await options.leases.refresh().catch(() => undefined);
      }
    },

    /** Closes the connections to the other instances (once no request is in flight: at shutdown). */
    close: () => hop.close(),
  };
}

export type Forwarder = ReturnType<typeof createForwarder>;

/** What a route calls before asking an account's actor: true when the owner already answered. */
export type ToOwner = (ctx: Context, user_id: string) => Promise<boolean>;
