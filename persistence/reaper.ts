/**
 * Deletes what has outlived its retention every `interval_ms`: `purge(limit)` deletes at most `limit`
 * rows and says how many it deleted, and a sweep calls it until a batch comes back short, so that no
 * statement holds many locks or runs long. Used for expired idempotency records and finished merchant
 * webhook deliveries (gateway.ts).
 */
export function startReaper(
  purge: (limit: number) => Promise<number>,
  options: { interval_ms: number; batch_max: number; onError: (error: unknown) => void },
): { stop(): void; sweep(): Promise<number> } {
  async function sweep(): Promise<number> {
    let total = 0;
    for (let removed = options.batch_max; removed === options.batch_max; total += removed) {
      removed = await purge(options.batch_max);
    }
    return total;
  }
  const timer = setInterval(() => void sweep().catch(options.onError), options.interval_ms);
  timer.unref();
  return { stop: () => clearInterval(timer), sweep };
}
