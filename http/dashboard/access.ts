import { timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import { bearerKey, hashApiKey, type Caller } from '../auth.ts';
import { errors } from '../errors.ts';

const LOOPBACK = ['localhost', '127.0.0.1', '[::1]'];
// A host name or a bracketed IPv6 literal, then an optional port (lower-cased before the match).
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/;

/** The names the dashboard answers to: loopback, the address it is bound to (not a wildcard), the configured ones. */
export function allowedHosts(bound: string, configured: readonly string[]): ReadonlySet<string> {
  const wildcard = bound === '0.0.0.0' || bound === '::';
  const own = wildcard ? [] : [bound.includes(':') ? `[${bound}]` : bound];
  return new Set([...LOOPBACK, ...own, ...configured].map((host) => host.toLowerCase()));
}

/**
 * Answers 421 to a request whose Host header names another host. A page of another site that points
 * its own name at this machine (DNS rebinding) is same-origin for the browser, so its reads would
 * succeed; only the Host it sends, its own name, tells it apart. The port is not compared: a published
 * port may differ from the bound one, and a rebinding page is told apart by its name alone.
 */
export function hostAllowList(hosts: ReadonlySet<string>): Middleware {
  return async (ctx, next) => {
    const name = HOST_HEADER.exec(ctx.get('Host').toLowerCase())?.[1];
    if (name === undefined || !hosts.has(name)) throw errors.hostNotAllowed();
    await next();
  };
}

/**
 * Makes the admin the caller when the request bears the admin key (compared in constant time, as
 * digests); routes that need it call `requireAdmin`. Any other key passes through untouched, for the
 * public API to judge when it is forwarded there.
 */
export function adminKeyCaller(adminKey: string): Middleware {
  const expected = hashApiKey(adminKey);
  return async (ctx, next) => {
    const key = bearerKey(ctx.get('Authorization'));
    if (key !== undefined && timingSafeEqual(hashApiKey(key), expected)) {
      ctx.state.caller = { kind: 'admin', id: 'admin' } satisfies Caller;
    }
    await next();
  };
}
