import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import type { UserStore } from '../persistence/users.ts';
import { errors } from './errors.ts';

/** Who is calling: the admin, or one user. */
export type Caller = { kind: 'admin'; id: 'admin' } | { kind: 'user'; id: string };

const KEY_PREFIX = 'pgw_';
const KEY_SHAPE = /^[A-Za-z0-9_-]{16,256}$/;

/** A new random API key (256 bits) and the digest that is stored in its place. */
export function newApiKey(): { key: string; hash: Buffer } {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: hashApiKey(key) };
}

/** SHA-256 of a key: keys are random and long, so a fast hash is enough (no password stretching). */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Resolves the Bearer key to a caller; routes that need one call `requireCaller`. */
export function authenticate(users: UserStore, adminKey: string): Middleware {
  const adminHash = hashApiKey(adminKey);
  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    if (header) {
      const match = /^Bearer (\S+)$/.exec(header);
      const key = match?.[1];
      if (!key || !KEY_SHAPE.test(key)) throw errors.unauthenticated();
      const hash = hashApiKey(key);
      if (timingSafeEqual(hash, adminHash)) {
        ctx.state.caller = { kind: 'admin', id: 'admin' } satisfies Caller;
      } else {
        const user = await users.findByKeyHash(hash);
        if (!user || !timingSafeEqual(user.api_key_hash, hash)) throw errors.unauthenticated();
        ctx.state.caller = { kind: 'user', id: user.id } satisfies Caller;
      }
    }
    await next();
  };
}

/** The authenticated caller, or 401. */
export function requireCaller(state: { caller?: Caller }): Caller {
  if (!state.caller) throw errors.unauthenticated();
  return state.caller;
}

/** The admin, or 403 for a user and 401 for nobody. */
export function requireAdmin(state: { caller?: Caller }): Caller {
  const caller = requireCaller(state);
  if (caller.kind !== 'admin') throw errors.forbidden();
  return caller;
}

/** Whether the caller may see this user's resources (others get 404, so ids cannot be probed). */
export function mayActFor(caller: Caller, userId: string): boolean {
  return caller.kind === 'admin' || caller.id === userId;
}
