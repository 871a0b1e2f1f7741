import Router from '@koa/router';
import type { BankClient } from '../../engine/bank-client.ts';
import type { StoragePings } from '../../persistence/storage.ts';
import { errorBody, errors } from '../errors.ts';

/** One dependency's check in `GET /health`. */
export interface HealthCheck {
  /** Resolves when the dependency is fine; rejects when not (with a `CheckFailed` to say how). */
  run: () => Promise<void>;
  /**
   * Whether the service cannot work without it (a failure is 503). The bank is not required: deposits
   * and withdrawals are still taken while it is down and their payments wait, so a failure there is
   * 200 `degraded`, and a load balancer keeps sending traffic.
   */
  required: boolean;
}

/** A failed check with a more precise state than `unavailable` (e.g. the bank's open circuit). */
export class CheckFailed extends Error {
  readonly state: string;
  constructor(state: string, message: string) {
    super(message);
    this.name = 'CheckFailed';
    this.state = state;
  }
}

function withTimeout(run: () => Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([run(), timeout]).finally(() => clearTimeout(timer));
}

/**
 * The checks of `GET /health`: Postgres and Redis answer a trivial query; the bank answers its own
 * `GET /health` within `timeout_ms` (`unavailable` otherwise) and our circuit breaker in front of it is
 * closed (`circuit_open` otherwise: payments are being held back).
 */
export function dependencyChecks(
  deps: { pings: StoragePings; bank: Pick<BankClient, 'reachable' | 'state'> },
  timeout_ms: number,
): Record<string, HealthCheck> {
  return {
    postgres: {
      required: true,
      run: () => deps.pings.postgres(),
    },
    redis: {
      required: true,
      run: () => deps.pings.redis(),
    },
    bank: {
      required: false,
      run: async () => {
        if (!(await deps.bank.reachable(timeout_ms))) throw new CheckFailed('unavailable', 'the bank does not answer');
        if (deps.bank.state() !== 'closed') throw new CheckFailed('circuit_open', 'the circuit breaker is open');
      },
    },
  };
}

/**
 * `GET /health`: 200 `ok` when every check passes; 200 `degraded` when only checks that are not
 * required fail; else 503 naming every check that failed.
 */
export function healthRoutes(checks: Record<string, HealthCheck>, timeoutMs: number): Router {
  const router = new Router();
  router.get('/health', async (ctx) => {
    const names = Object.keys(checks);
    const outcomes = await Promise.allSettled(names.map((name) => withTimeout(checks[name]!.run, timeoutMs)));
    const results = Object.fromEntries(
      names.map((name, i) => {
        const outcome = outcomes[i]!;
        if (outcome.status === 'fulfilled') return [name, 'ok'];
        return [name, outcome.reason instanceof CheckFailed ? outcome.reason.state : 'unavailable'];
      }),
    );
    const failing = names.filter((name) => results[name] !== 'ok');
    const unavailable = failing.some((name) => checks[name]!.required);
    if (!unavailable) {
      ctx.body = { status: failing.length ? 'degraded' : 'ok', checks: results };
      return;
    }
    // The error's shape beside the checks, so that a monitor sees which dependency failed.
    const error = errors.serviceUnavailable({ failing: failing.join(', ') });
    ctx.status = error.status;
    ctx.body = { status: 'unavailable', checks: results, ...errorBody(error, ctx.state.requestId) };
  });
  return router;
}
