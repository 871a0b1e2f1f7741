import { once } from 'node:events';
import { createRedis } from '../../persistence/redis.ts';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Keys deleted per round trip when a test clears its prefix. */
const DELETE_BATCH_MAX = 500;

/**
 * A Redis key prefix of one test's own: under this run's id (the test command deletes what is left
 * under it when the run ends, even if the test process died) and this process's pid, so that runs and
 * files sharing one Redis never see each other's keys.
 */
export function testKeyPrefix(name: string): string {
  return `pgw-test-${process.env.TEST_RUN_ID ?? 'solo'}-${name}-${process.pid}-${crypto.randomUUID().slice(0, 8)}:`;
}

/** Deletes every key under `prefix` (SCAN, never KEYS); returns how many there were. */
export async function dropKeys(prefix: string, url = REDIS_URL): Promise<number> {
  const redis = createRedis(url, 'test-cleanup');
  redis.on('error', () => {});
  try {
    await once(redis, 'ready');
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let dropped = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', DELETE_BATCH_MAX);
      cursor = next;
      if (keys.length > 0) dropped += await redis.unlink(...keys);
    } while (cursor !== '0');
    return dropped;
  } finally {
    redis.disconnect();
  }
}
