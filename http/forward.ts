import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { shardOf } from '../engine/shards.ts';
import type { ShardLeases } from '../engine/shard-leases.ts';
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
    let response: Response;
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') ctx.state.writeSent = true;
    try {
      response = await fetch(owner.url + ctx.originalUrl, {
        method: ctx.method,
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(options.timeout_ms),
      });
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      options.log.warn({ owner: owner.id, err: error, code }, 'forwarding failed');
      // Refused before anything was sent, or a read (safe to repeat): look for the owner again.
      if (code === 'ECONNREFUSED' || ctx.method === 'GET') return 'unreachable';
      // A write that may have reached the owner: its outcome is unknown to us (the key replays it).
      throw errors.outcomeUnknown();
    }
    const answer = Buffer.from(await response.arrayBuffer());
    if (response.status === 503 && answer.includes(`"${errors.shardUnavailable.code}"`)) return 'unreachable';
    ctx.status = response.status;
    for (const name of PASSED_BACK) {
      const value = response.headers.get(name);
      if (value !== null) ctx.set(name, value);
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
  };
}

export type Forwarder = ReturnType<typeof createForwarder>;

/** What a route calls before asking an account's actor: true when the owner already answered. */
export type ToOwner = (ctx: Context, user_id: string) => Promise<boolean>;
