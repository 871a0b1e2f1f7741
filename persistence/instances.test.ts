import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { createInstanceRegistry } from './instances.ts';
import { createRedis } from './redis.ts';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/15';
const redis = createRedis(redisUrl, 'instances-test');
const subscriber = createRedis(redisUrl, 'instances-test-subscriber');
after(() => {
  redis.disconnect();
  subscriber.disconnect();
});

test('an instance that dies leaves nothing in Redis: its key and the member set expire', async () => {
  // The connection fails fast while not ready (no offline queue): wait for it.
  if (redis.status !== 'ready') await once(redis, 'ready');
  const prefix = `pgw-test-instances-${process.pid}-${crypto.randomUUID()}:`;
  const instances = createInstanceRegistry(redis, subscriber, prefix);
  await instances.heartbeat({ id: 'a', url: 'http://a', started_at: new Date().toISOString(), actors: {} }, 60_000);
  const [memberTtl, keyTtl] = await Promise.all([redis.pttl(`${prefix}instances`), redis.pttl(`${prefix}instance:a`)]);
  assert.ok(keyTtl > 0 && keyTtl <= 60_000, `the instance's key expires: ${keyTtl}`);
  assert.ok(memberTtl > 60_000 && memberTtl <= 120_000, `the member set expires after it: ${memberTtl}`);
  assert.deepEqual(
    (await instances.live()).map((record) => record.id),
    ['a'],
  );
  await redis.del(`${prefix}instances`, `${prefix}instance:a`);
});
