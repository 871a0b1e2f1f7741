import type { Middleware } from 'koa';

// Hand-written rather than koa-helmet and @koa/cors: neither is installed, and the whole policy is a
// handful of fixed strings that are easier to audit here than two packages' option sets and defaults.

/** What `securityHeaders` needs to know: the cross-origin callers to allow, and the HSTS lifetime. */
export interface SecurityHeadersOptions {
  /**
   * Origins other than the gateway's own that may call the API from a browser, each exactly as a
   * browser sends it in `Origin` (`https://app.example.com`, no path, no trailing slash). Empty: the
   * same-origin pages (the viewer at `/`, `/docs`) work, and every other origin is refused by the browser.
   */
  cors_origins: readonly string[];
  /** How long a browser remembers to use HTTPS only; default one year. */
  hsts_max_age_s?: number;
}

const HSTS_MAX_AGE_S_DEFAULT = 365 * 24 * 60 * 60;
// How long a browser may reuse a preflight answer before it asks again.
const PREFLIGHT_MAX_AGE_S = 600;

const JSON_POLICY = "default-src 'none'; frame-ancestors 'none'";
// The plain HTML pages carry their scripts and styles inline (no build step) and call the API on
// their own origin; `base-uri` and `form-action` are spelled out because `default-src` does not cover them.
const PAGE_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

// The API reference at /docs (Swagger UI) runs only its own files from this origin: no inline script
// and no inline style (it styles its elements through the DOM, which the policy allows); its style
// sheet draws its icons from data: URLs, the one thing it needs beyond 'self'.
const DOCS_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');
// @koa/router matches case-insensitively and without regard to a trailing slash.
const DOCS_PAGE = /^\/docs\/?$/i;

const ALLOWED_METHODS = 'GET, HEAD, POST';
const ALLOWED_HEADERS = 'Authorization, Content-Type, Idempotency-Key, X-Request-ID';
const EXPOSED_HEADERS = [
  'X-Request-ID',
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Reset',
  'X-RateLimit-Status',
  'Retry-After',
  'Idempotent-Replayed',
].join(', ');

// @koa/router matches case-insensitively, so `/API/v1/...` reaches the API too.
const API_PATH = /^\/api(?:\/|$)/i;

function assertOrigins(origins: readonly string[]): void {
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (parsed?.origin !== origin) {
      throw new Error(`cors_origins: "${origin}" is not an origin such as https://app.example.com`);
    }
  }
}

/**
 * Sets, on every response: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
 * `Referrer-Policy: no-referrer`, `Strict-Transport-Security` (browsers ignore it over plain HTTP, so
 * it only takes effect behind TLS, e.g. the nginx in `deploy/`), a Content-Security-Policy chosen by
 * the response's content type (`default-src 'none'` unless it is HTML), and `Cache-Control: no-store`
 * under `/api`. Cross-origin callers get CORS headers only when their origin is in `cors_origins`,
 * and only their preflights are answered here. Put it first, so that every answer carries the headers.
 */
export function securityHeaders(options: SecurityHeadersOptions): Middleware {
  assertOrigins(options.cors_origins);
  const allowed = new Set(options.cors_origins);
  const hsts = `max-age=${options.hsts_max_age_s ?? HSTS_MAX_AGE_S_DEFAULT}; includeSubDomains`;

  return async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Strict-Transport-Security', hsts);
    // Set before the route runs so that an error answer (built after this middleware unwinds) keeps it.
    ctx.set('Content-Security-Policy', JSON_POLICY);
    if (API_PATH.test(ctx.path)) ctx.set('Cache-Control', 'no-store');

    if (allowed.size > 0) {
      // The answer depends on Origin whenever an allow-list exists, so caches must key on it.
      ctx.vary('Origin');
      const origin = ctx.get('Origin');
      if (allowed.has(origin)) {
        ctx.set('Access-Control-Allow-Origin', origin);
        if (ctx.method === 'OPTIONS' && ctx.get('Access-Control-Request-Method')) {
          ctx.set('Access-Control-Allow-Methods', ALLOWED_METHODS);
          ctx.set('Access-Control-Allow-Headers', ALLOWED_HEADERS);
          ctx.set('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_S));
          ctx.status = 204;
          return;
        }
        ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS);
      }
    }

    await next();
    if (ctx.response.is('html'))
      ctx.set('Content-Security-Policy', DOCS_PAGE.test(ctx.path) ? DOCS_POLICY : PAGE_POLICY);
  };
}
