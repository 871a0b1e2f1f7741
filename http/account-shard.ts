import type { Middleware } from 'koa';
import { shardOf } from '../engine/shards.ts';

/** The shard of the caller's own account (a user's key only: the admin acts for many accounts). */
export const CALLER_SHARD_HEADER = 'x-caller-shard';
/** `1` when this instance owned the shard of the request's account as it answered, `0` when another did. */
export const SHARD_LOCAL_HEADER = 'x-shard-local';

const USER_PATH = /^\/api\/v1\/users\/([^/]+)\//;

export interface AccountShardOptions {
  shards: number;
  owns: (shard: number) => boolean;
}

/**
 * Hints for a shard-aware front door (front-door.ts), set on the answers of requests that name an
 * account: the shard of a user's key (`X-Caller-Shard`), which the front door cannot compute from an
 * opaque key but then remembers, so that the key's next request goes straight to the shard's owner;
 * and whether this instance answered from its own shard (`X-Shard-Local: 1`) or another one did
 * (`0`: the request was forwarded, or refused while the shard had no owner). A request another
 * instance forwarded here gets neither: the forwarder's answer is what the client sees. Error answers
 * (thrown past this middleware) get neither either.
 */
export function accountShard(options: AccountShardOptions): Middleware {
  return async (ctx, next) => {
    await next();
    if (ctx.state.forwardedBy) return;
    const caller = ctx.state.caller;
    let user_id: string | undefined;
    if (caller?.kind === 'user') {
      user_id = caller.id;
      ctx.set(CALLER_SHARD_HEADER, String(shardOf(user_id, options.shards)));
    } else {
      const named = USER_PATH.exec(ctx.path)?.[1];
      if (named !== undefined) user_id = safeDecode(named);
    }
    if (user_id !== undefined) ctx.set(SHARD_LOCAL_HEADER, options.owns(shardOf(user_id, options.shards)) ? '1' : '0');
  };
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
