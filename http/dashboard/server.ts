import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { Payments } from '../../engine/payments.ts';
import type { Logger } from '../../logger.ts';
import { requireAdmin } from '../auth.ts';
import { createApp } from '../app.ts';
import { errors } from '../errors.ts';
import { metricsRoutes } from '../routes/metrics.ts';
import { deadLetterParams } from '../schemas.ts';
import { securityHeaders } from '../security-headers.ts';
import { parseInput } from '../validation.ts';
import { adminKeyCaller, allowedHosts, hostAllowList } from './access.ts';
import { readOverview, type OverviewSources } from './overview.ts';
import { createSeries } from './series.ts';

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';
const moduleFile = createRequire(import.meta.url).resolve;

// Read once at start: the files are static, and a missing one should stop the start, not a request.
// Only these files are served, so no request path ever reaches the file system. The viewer's money.js
// is the one formatting of amounts for both pages; uPlot comes from node_modules, never a CDN.
const PAGE = readFileSync(new URL('./index.html', import.meta.url), 'utf8');
const ASSETS = new Map(
  (
    [
      ['/dashboard.js', new URL('./dashboard.js', import.meta.url), JS],
      ['/charts.js', new URL('./charts.js', import.meta.url), JS],
      ['/money.js', new URL('../viewer/money.js', import.meta.url), JS],
      ['/vendor/uPlot.iife.min.js', moduleFile('uplot/dist/uPlot.iife.min.js'), JS],
      ['/vendor/uPlot.min.css', moduleFile('uplot/dist/uPlot.min.css'), CSS],
    ] as const
  ).map(([path, file, type]) => [path, { type, body: readFileSync(file, 'utf8') }]),
);

/** The charts' sampling: one sample a second, the last ten minutes kept. */
const SERIES_INTERVAL_S = 1;
const SERIES_WINDOW_S = 600;

export interface DashboardOptions extends OverviewSources {
  host: string;
  /** 0 for a free port. */
  port: number;
  /** Host names answered besides loopback and `host` (DASHBOARD_ALLOWED_HOSTS). */
  allowed_hosts: readonly string[];
  /** What `GET /api/state`, `GET /api/series` and `GET /metrics` ask for (ADMIN_API_KEY). */
  admin_key: string;
  /** Where `/metrics` and the charts read the counters from. */
  metrics: MetricsRegistry;
  payments: Pick<Payments, 'inFlight' | 'inFlightCount'>;
  /** The gateway's public API, where a dead letter's retry is forwarded. */
  gateway_url: string;
  forward_timeout_ms: number;
  log: Logger;
}

/**
 * The task dashboard on the internal port: a page that polls `GET /api/state` every 2 s and
 * `GET /api/series` (its charts of the last ten minutes, sampled here every second) every second, and
 * `GET /metrics`. These reads need the admin key the operator types into the page, and every request
 * must name an allowed host (DNS rebinding); the one thing it changes, retrying a dead letter, is
 * forwarded to the public API with that key, and that API decides (401, 403, 409, or 202).
 */
export async function startDashboard(options: DashboardOptions): Promise<{ url: string; close(): Promise<void> }> {
  const series = createSeries(options, { interval_s: SERIES_INTERVAL_S, window_s: SERIES_WINDOW_S });
  await series.sample();

  const router = new Router();
  router.get('/', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = PAGE;
  });
  for (const [path, asset] of ASSETS) {
    router.get(path, (ctx) => {
      ctx.type = asset.type;
      ctx.body = asset.body;
    });
  }
  router.get('/api/state', async (ctx) => {
    requireAdmin(ctx.state);
    ctx.body = await readOverview(options);
  });
  router.get('/api/series', (ctx) => {
    requireAdmin(ctx.state);
    ctx.body = series.read();
  });
  router.post('/api/dead-letters/:id/retry', async (ctx) => {
    const { id } = parseInput(deadLetterParams, ctx.params);
    const authorization = ctx.get('Authorization');
    if (!authorization) throw errors.unauthenticated();
    const answer = await forwardRetry(options, id, authorization);
    ctx.status = answer.status;
    ctx.type = 'application/json';
    ctx.body = answer.body;
  });

  // Its access log would be a line every 2 s per open page: only failures are worth a line here.
  const log = options.log.child({}, { level: 'warn' });
  const app = createApp({
    log,
    middleware: [
      securityHeaders({ cors_origins: [] }),
      hostAllowList(allowedHosts(options.host, options.allowed_hosts)),
      adminKeyCaller(options.admin_key),
    ],
    routers: [router, metricsRoutes(options.metrics)],
  });
  const server = createServer(app.callback());
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  options.log.info({ port }, 'dashboard listening');
  // Sampled whether or not a page is open, so that an operator who opens one sees the minutes before.
  // Unref'd: the charts never keep a stopping process alive.
  const sampling = setInterval(() => {
    series.sample().catch((error: unknown) => options.log.warn({ err: error }, 'dashboard could not sample'));
  }, SERIES_INTERVAL_S * 1000).unref();

  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      clearInterval(sampling);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Pages keep their connections open between polls; nothing here is worth waiting for.
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Forwards a dead letter's retry to the public API, answering with what it answered. */
async function forwardRetry(
  options: DashboardOptions,
  id: string,
  authorization: string,
): Promise<{ status: number; body: string }> {
  try {
    const response = await fetch(`${options.gateway_url}/api/v1/admin/dead-letters/${id}/retry`, {
      method: 'POST',
      // One click is one retry: a fresh key each time (the API answers 409 once the letter is retried).
      headers: { authorization, 'idempotency-key': randomUUID() },
      signal: AbortSignal.timeout(options.forward_timeout_ms),
    });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    options.log.warn({ err: error }, 'dashboard could not reach the public API');
    throw errors.gatewayUnreachable();
  }
}
