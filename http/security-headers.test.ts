import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Router from '@koa/router';
import { createLogger } from '../logger.ts';
import { createApp } from './app.ts';
import { errors } from './errors.ts';
import { securityHeaders } from './security-headers.ts';

const ALLOWED = 'https://app.example.test';

/** An app with the middleware in front of one JSON route, one failing route and two HTML pages. */
async function serve(cors_origins: readonly string[]): Promise<{ server: Server; url: string }> {
  const router = new Router();
  router.get('/api/v1/thing', (ctx) => {
    ctx.body = { ok: true };
  });
  router.post('/api/v1/thing', (ctx) => {
    ctx.body = { ok: true };
  });
  router.get('/api/v1/broken', () => {
    throw errors.forbidden();
  });
  router.get('/', (ctx) => {
    ctx.body = '<!doctype html><title>viewer</title>';
  });
  router.get('/docs', (ctx) => {
    ctx.body = '<!doctype html><title>API</title>';
  });
  const app = createApp({
    log: createLogger('silent'),
    middleware: [securityHeaders({ cors_origins })],
    routers: [router],
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function preflight(url: string, origin: string): Promise<Response> {
  return fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type, idempotency-key',
    },
  });
}

describe('security headers', () => {
  let app: { server: Server; url: string };
  before(async () => {
    app = await serve([]);
  });
  after(() => {
    app.server.closeAllConnections();
    app.server.close();
  });

  test('a JSON answer is not sniffed, framed, cached or given a referrer, and loads nothing', async () => {
    const answer = await fetch(`${app.url}/api/v1/thing`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(answer.headers.get('x-frame-options'), 'DENY');
    assert.equal(answer.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(answer.headers.get('strict-transport-security'), 'max-age=31536000; includeSubDomains');
    assert.equal(answer.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'");
    assert.equal(answer.headers.get('cache-control'), 'no-store');
  });

  test('an error answer carries the same headers', async () => {
    for (const path of ['/api/v1/broken', '/api/v1/nothing-here']) {
      const answer = await fetch(app.url + path);
      assert.ok(answer.status >= 400, path);
      assert.equal(answer.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(answer.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'", path);
      assert.equal(answer.headers.get('cache-control'), 'no-store', path);
    }
  });

  test('an HTML page may run its own inline script and style and call its own origin, and may be cached', async () => {
    const answer = await fetch(`${app.url}/`);
    assert.match(answer.headers.get('content-type') ?? '', /^text\/html/);
    const policy = answer.headers.get('content-security-policy') ?? '';
    for (const directive of [
      "default-src 'self'",
      "script-src 'self' 'unsafe-inline'",
      "style-src 'self' 'unsafe-inline'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
    ]) {
      assert.ok(policy.split('; ').includes(directive), directive);
    }
    assert.equal(answer.headers.get('x-frame-options'), 'DENY');
    assert.equal(answer.headers.get('cache-control'), null);
  });

  test('the API reference at /docs may run scripts of its own origin only, not inline ones', async () => {
    for (const path of ['/docs', '/docs/', '/DOCS']) {
      const answer = await fetch(app.url + path);
      assert.equal(answer.status, 200, path);
      assert.deepEqual(answer.headers.get('content-security-policy')?.split('; '), [
        "default-src 'self'",
        "script-src 'self'",
        // Swagger UI's style sheet draws its icons from data: URLs.
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
      ]);
    }
    const viewer = await fetch(`${app.url}/`);
    assert.ok(viewer.headers.get('content-security-policy')?.includes("script-src 'self' 'unsafe-inline'"));
  });

  test('without an allow-list, no origin is allowed and no preflight is answered', async () => {
    const simple = await fetch(`${app.url}/api/v1/thing`, { headers: { origin: ALLOWED } });
    assert.equal(simple.headers.get('access-control-allow-origin'), null);
    assert.equal(simple.headers.get('access-control-expose-headers'), null);
    const answer = await preflight(`${app.url}/api/v1/thing`, ALLOWED);
    assert.equal(answer.headers.get('access-control-allow-origin'), null);
    assert.equal(answer.headers.get('access-control-allow-methods'), null);
  });
});

describe('CORS with an allow-list', () => {
  let app: { server: Server; url: string };
  before(async () => {
    app = await serve([ALLOWED]);
  });
  after(() => {
    app.server.closeAllConnections();
    app.server.close();
  });

  test("an allowed origin's preflight is answered with the methods and headers the API takes", async () => {
    const answer = await preflight(`${app.url}/api/v1/thing`, ALLOWED);
    assert.equal(answer.status, 204);
    assert.equal(answer.headers.get('access-control-allow-origin'), ALLOWED);
    assert.equal(answer.headers.get('access-control-allow-methods'), 'GET, HEAD, POST');
    assert.equal(
      answer.headers.get('access-control-allow-headers'),
      'Authorization, Content-Type, Idempotency-Key, X-Request-ID',
    );
    assert.equal(answer.headers.get('access-control-max-age'), '600');
    assert.equal(answer.headers.get('access-control-allow-credentials'), null);
    assert.match(answer.headers.get('vary') ?? '', /Origin/);
  });

  test('an allowed origin reads the answer and the headers a client needs', async () => {
    const answer = await fetch(`${app.url}/api/v1/thing`, { headers: { origin: ALLOWED } });
    assert.equal(answer.headers.get('access-control-allow-origin'), ALLOWED);
    assert.deepEqual(answer.headers.get('access-control-expose-headers')?.split(', '), [
      'X-Request-ID',
      'X-RateLimit-Limit',
      'X-RateLimit-Remaining',
      'X-RateLimit-Reset',
      'X-RateLimit-Status',
      'Retry-After',
      'Idempotent-Replayed',
    ]);
    assert.match(answer.headers.get('vary') ?? '', /Origin/);
  });

  test('any other origin, including a look-alike and "null", gets no CORS headers', async () => {
    for (const origin of ['https://evil.example.test', `${ALLOWED}.evil.test`, 'http://app.example.test', 'null']) {
      const simple = await fetch(`${app.url}/api/v1/thing`, { headers: { origin } });
      assert.equal(simple.headers.get('access-control-allow-origin'), null, origin);
      const answer = await preflight(`${app.url}/api/v1/thing`, origin);
      assert.notEqual(answer.status, 204, origin);
      assert.equal(answer.headers.get('access-control-allow-origin'), null, origin);
      assert.equal(answer.headers.get('access-control-allow-methods'), null, origin);
    }
  });

  test('an allow-list entry that is not an origin is refused at start', () => {
    for (const entry of ['*', 'app.example.test', 'https://app.example.test/', 'https://app.example.test/path']) {
      assert.throws(() => securityHeaders({ cors_origins: [entry] }), /not an origin/, entry);
    }
  });
});
