import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import type { Middleware } from 'koa';
import { z } from 'zod';
import { createApp } from '../http/app.ts';
import { readJsonBody } from '../http/body.ts';
import { errors } from '../http/errors.ts';
import { parseInput } from '../http/validation.ts';
import type { Logger } from '../logger.ts';
import { AMOUNT_MAX, type Bank, type SubmitResult } from './bank.ts';
import { bankErrors } from './bank-errors.ts';

const BODY_SIZE_MAX_BYTES = 16 * 1024;
const HELD_REQUESTS_MAX = 1_000;
const SHUTDOWN_TIMEOUT_MS = 5_000;

/** The body of `POST /bank/v1/transfers`. */
export const transferRequestSchema = z.object({
  reference: z.uuid(),
  direction: z.enum(['credit', 'debit']),
  amount: z.number().int().positive().max(Number(AMOUNT_MAX)).transform(BigInt),
  currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as USD'),
  account: z.string().min(1).max(100),
});

export interface BankServer {
  url: string;
  /** Releases held requests, stops accepting and closes the connections (bounded). */
  close(): Promise<void>;
  /** How many requests it holds open now (the scenario that never answers). */
  held(): number;
}

// Requests the bank "never answers" are held open here, each until its client gives up or for at most
// `hold_ms`, and all released at once on close so that shutdown is not held hostage by them.
function createHolds(hold_ms: number) {
  const releases = new Set<() => void>();
  return {
    hold(response: ServerResponse): Promise<void> {
      if (releases.size >= HELD_REQUESTS_MAX) return Promise.resolve();
      return new Promise((resolve) => {
        const release = () => {
          clearTimeout(timer);
          response.off('close', release);
          releases.delete(release);
          resolve();
        };
        const timer = setTimeout(release, hold_ms);
        response.once('close', release);
        releases.add(release);
      });
    },
    releaseAll() {
      for (const release of [...releases]) release();
    },
    count: () => releases.size,
  };
}

function transferRoutes(bank: Bank, holds: ReturnType<typeof createHolds>): Router {
  const router = new Router({ prefix: '/bank/v1/transfers' });
  router.post('/', async (ctx) => {
    const request = parseInput(transferRequestSchema, await readJsonBody(ctx, BODY_SIZE_MAX_BYTES));
    const result: SubmitResult = await bank.submit(request);
    switch (result.kind) {
      case 'accepted':
        ctx.status = 202;
        ctx.body = { bank_reference: result.bank_reference, status: result.status };
        return;
      case 'invalid':
        throw bankErrors.invalidRequest({ reason: result.message });
      case 'reference_reused':
        throw bankErrors.referenceReused();
      case 'unavailable':
        throw bankErrors.bankUnavailable();
      case 'no_answer':
        await holds.hold(ctx.res);
        throw bankErrors.bankTimeout();
    }
  });
  router.get('/:reference', async (ctx) => {
    const view = await bank.status(ctx.params.reference ?? '');
    if (!view) throw errors.notFound({ what: 'transfer' });
    ctx.body = view;
  });
  return router;
}

/** Serves the bank over HTTP on `host:port` (0 picks a free port). */
export async function startBankServer(options: {
  port: number;
  host: string;
  bank: Bank;
  log: Logger;
  hold_ms?: number;
}): Promise<BankServer> {
  const log = options.log.child({ module: 'bank-http' });
  const holds = createHolds(options.hold_ms ?? 30_000);
  const health = new Router();
  health.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  let closing: Promise<void> | undefined;
  // Once closing, every answer asks its client to drop the connection, so that a keep-alive socket
  // does not hold the shutdown back.
  const dropConnectionsWhenClosing: Middleware = async (ctx, next) => {
    try {
      await next();
    } finally {
      if (closing) ctx.set('Connection', 'close');
    }
  };
  const app = createApp({
    log,
    middleware: [dropConnectionsWhenClosing],
    routers: [health, transferRoutes(options.bank, holds)],
  });
  const server = app.listen(options.port, options.host);
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const wildcard = options.host === '0.0.0.0' || options.host === '::';
  const host = wildcard ? '127.0.0.1' : options.host.includes(':') ? `[${options.host}]` : options.host;
  log.info({ port }, 'bank listening');

  const close = () =>
    (closing ??= (async () => {
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      holds.releaseAll();
      server.closeIdleConnections();
      const deadline = setTimeout(() => server.closeAllConnections(), SHUTDOWN_TIMEOUT_MS);
      await drained;
      clearTimeout(deadline);
    })());

  return { url: `http://${host}:${port}`, close, held: holds.count };
}
