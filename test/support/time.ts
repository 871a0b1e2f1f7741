import { availableParallelism, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** The largest factor a loaded machine gets when TEST_TIME_SCALE is not set. */
const TIME_SCALE_MAX = 4;
/** How often `eventually` checks its condition. */
const POLL_MS = 25;

/**
 * The factor every deadline and lease of the suite is multiplied by: TEST_TIME_SCALE when set (the
 * test command sets it once, so that every test process agrees), else 1 on a quiet machine and the
 * number of runnable processes per core (the last minute's load average), up to TIME_SCALE_MAX, on
 * a busy one. A test that waits on an event never takes longer for it; only its deadline, the point
 * where it gives up, moves.
 */
export function defaultTimeScale(): number {
  const load = loadavg()[0] ?? 0;
  return Math.min(TIME_SCALE_MAX, Math.max(1, Math.ceil(load / availableParallelism())));
}

export const TIME_SCALE = Number(process.env.TEST_TIME_SCALE ?? defaultTimeScale());

/** `ms` on this machine's time scale. */
export function scaled(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}

/** Polls `check` until it returns a value, or fails after `timeout_ms` (scaled). */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeout_ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + scaled(timeout_ms);
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not so within ${scaled(timeout_ms)} ms`);
    await sleep(POLL_MS);
  }
}

/**
 * Waits `ms` where the wait itself is the behaviour under test (a TTL passing, a client that is slow
 * on purpose). Never use it to wait for something to happen: await the event or poll with `eventually`.
 */
export function elapse(ms: number): Promise<void> {
  return sleep(ms);
}

/** Retries `check` until it stops throwing, or rethrows its last failure after `timeout_ms` (scaled). */
export async function settles(check: () => Promise<void> | void, timeout_ms = 10_000): Promise<void> {
  const deadline = Date.now() + scaled(timeout_ms);
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(POLL_MS);
    }
  }
}
