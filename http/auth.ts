import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import type { UserStore } from '../persistence/users.ts';
import { errors } from './errors.ts';

/** Who is calling: the admin, or one user. */
export type Caller = { kind: 'admin'; id: 'admin' } | { kind: 'user'; id: string };

const KEY_PREFIX = 'pgw_';
const KEY_SHAPE = /^[A-Za-z0-9_-]{16,256}$/;

// RFC 7235: the scheme is case-insensitive (`bearer`, `BEARER`), and one or more spaces precede the credentials.
const BEARER = /^Bearer +(\S+)$/i;

/** The key of an `Authorization: Bearer <key>` header, or undefined when the header is not one. */
export function bearerKey(header: string): string | undefined {
  return BEARER.exec(header)?.[1];
}

/** How many characters of a key are kept and shown, so that a person can tell keys apart. */
export const KEY_SHOWN_PREFIX_LENGTH = 12;

/**
 * A new random API key (256 bits), the digest that is stored in its place, and its first characters
 * (the fixed `pgw_` and 8 random ones: 48 of its 256 bits, too few to help a guess).
 */
export function newApiKey(): { key: string; hash: Buffer; prefix: string } {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: hashApiKey(key), prefix: key.slice(0, KEY_SHOWN_PREFIX_LENGTH) };
}

/** SHA-256 of a key: keys are random and long, so a fast hash is enough (no password stretching). */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export interface KeyCacheOptions {
  /**
   * How long a key found in Postgres is trusted without asking again; 0 asks on every request. This
   * is how long a revoked key (or a deleted user) can keep working on an instance after the change.
   */
  ttl_ms?: number;
  /** The most keys kept; the least recently used goes first. */
  entries_max?: number;
}

export const KEY_CACHE_TTL_MS_DEFAULT = 5000;
export const KEY_CACHE_ENTRIES_MAX_DEFAULT = 10_000;

type KeyOwner = NonNullable<Awaited<ReturnType<UserStore['findByKeyHash']>>>;

/**
 * The users' keys found in Postgres, kept in this process for `ttl_ms` (LRU, bounded). Only keys that
 * were found are kept: an unknown key asks Postgres every time (the auth-failure limit bounds those),
 * so a key issued a moment ago works at once. An entry expires `ttl_ms` after the query that found it
 * was sent, so a key revoked at time T authenticates nowhere after T + `ttl_ms`. Concurrent requests
 * with a key not yet cached share one query.
 */
export function createKeyCache(users: UserStore, options: KeyCacheOptions = {}) {
  const ttl_ms = options.ttl_ms ?? KEY_CACHE_TTL_MS_DEFAULT;
  const entries_max = options.entries_max ?? KEY_CACHE_ENTRIES_MAX_DEFAULT;
  if (!Number.isInteger(ttl_ms) || ttl_ms < 0) throw new RangeError('ttl_ms must be a non-negative integer');
  if (!Number.isInteger(entries_max) || entries_max < 1) throw new RangeError('entries_max must be a positive integer');
  // A Map iterates in insertion order: re-inserting on every hit makes its first key the least recently used.
  const entries = new Map<string, { owner: KeyOwner; expires_at_ms: number }>();
  const loading = new Map<string, Promise<KeyOwner | undefined>>();

  function load(id: string, hash: Buffer): Promise<KeyOwner | undefined> {
    const asked_at_ms = Date.now();
    const query = users.findByKeyHash(hash).then(
      (owner) => {
        loading.delete(id);
        if (owner) {
          entries.set(id, { owner, expires_at_ms: asked_at_ms + ttl_ms });
          if (entries.size > entries_max) entries.delete(entries.keys().next().value!);
        }
        return owner;
      },
      (error: unknown) => {
        loading.delete(id);
        throw error;
      },
    );
    loading.set(id, query);
    return query;
  }

  return {
    /** The active user holding the key with this digest, from the cache or from Postgres. */
    find(hash: Buffer): Promise<KeyOwner | undefined> {
      if (ttl_ms === 0) return users.findByKeyHash(hash);
      const id = hash.toString('latin1');
      const entry = entries.get(id);
      if (entry) {
        entries.delete(id);
        if (entry.expires_at_ms > Date.now()) {
          entries.set(id, entry);
          return Promise.resolve(entry.owner);
        }
      }
      return loading.get(id) ?? load(id, hash);
    },
    /** Drops a key this process revoked, so that it stops working here at once (elsewhere: within the TTL). */
    forget(hash: Buffer): void {
      entries.delete(hash.toString('latin1'));
    },
    size: () => entries.size,
  };
}

export type KeyCache = ReturnType<typeof createKeyCache>;

/**
 * The caller a key belongs to, or undefined for a malformed, unknown or revoked key: the admin's key
 * compared in constant time, users' keys looked up through a `createKeyCache` (see there for how
 * stale it may be). The Koa middleware below and the WebSocket sessions (http/websocket.ts) share it.
 */
export function keyAuthenticator(keys: KeyCache, adminKey: string): (key: string) => Promise<Caller | undefined> {
  const adminHash = hashApiKey(adminKey);
  return async (key) => {
    if (!KEY_SHAPE.test(key)) return undefined;
    const hash = hashApiKey(key);
    if (timingSafeEqual(hash, adminHash)) return { kind: 'admin', id: 'admin' };
    const user = await keys.find(hash);
    if (!user || !timingSafeEqual(user.api_key_hash, hash)) return undefined;
    return { kind: 'user', id: user.id };
  };
}

/** Resolves the Bearer key to a caller (`keyAuthenticator`); routes that need one call `requireCaller`. */
export function authenticate(keys: KeyCache, adminKey: string): Middleware {
  const callerOf = keyAuthenticator(keys, adminKey);
  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    if (header) {
      const key = bearerKey(header);
      const caller = key === undefined ? undefined : await callerOf(key);
      if (!caller) throw errors.unauthenticated();
      ctx.state.caller = caller;
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
