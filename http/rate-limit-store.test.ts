import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createLogger } from '../logger.ts';
import { rateLimitCounters, WINDOW_S } from '../persistence/rate-limit-counters.ts';
import { createRedis } from '../persistence/redis.ts';
import { captureLines } from '../test/support/log-capture.ts';
import { countInOrder, createRateLimitStore } from './rate-limit-store.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let redis: Redis;
/** The commands this client sent to the real Redis, by name. */
const sent: string[] = [];
before(async () => {
  redis = createRedis(REDIS_URL, 'rate-limit-store-test');
  await once(redis, 'ready');
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, stream) => {
    sent.push(command.name);
    return send(command, stream);
  };
});
after(() => redis.disconnect());

function store(key_prefix = `test:${randomUUID()}`) {
  return createRateLimitStore({
    name: 'test',
    counters: rateLimitCounters(redis),
    key_prefix,
    log: createLogger('silent'),
    on_redis_down: 'per_instance',
    timeout_ms: 1000,
  });
}

const scripts = () => sent.filter((name) => name === 'evalsha' || name === 'eval').length;

test('the counts asked in one turn of the event loop go to Redis as one script call', async () => {
  const counter = store().counter('c', 100);
  const before = scripts();
  const counts = await Promise.all(Array.from({ length: 50 }, (_, i) => counter.consume(`k${i % 10}`)));
  assert.equal(scripts() - before, 1);
  // Ten keys, five hits each, counted in arrival order.
  for (let key = 0; key < 10; key += 1) {
    const mine = counts.filter((_, i) => i % 10 === key);
    assert.deepEqual(
      mine.map((count) => count.store === 'redis' && count.consumed),
      [1, 2, 3, 4, 5],
    );
  }
  const [first] = counts;
  assert.ok(first?.store === 'redis' && first.reset_ms > 0 && first.reset_ms <= WINDOW_S * 1000);
});

test('a request stops at the first limit it is over: the limits after it are not counted', async () => {
  const limits = store();
  const own = limits.counter('own', 1);
  const global = limits.counter('global', 10);
  const steps = [
    { counter: own, key: 'alice', op: 'consume' as const },
    { counter: global, key: 'all', op: 'consume' as const },
  ];
  const first = await countInOrder(steps);
  assert.deepEqual(
    first.map((count) => count.store === 'redis' && count.consumed),
    [1, 1],
  );
  const second = await countInOrder(steps);
  assert.deepEqual(
    second.map((count) => count.store === 'redis' && count.consumed),
    [2],
  );
  const peeked = await countInOrder([
    { counter: own, key: 'alice', op: 'peek' },
    { counter: global, key: 'all', op: 'consume' },
  ]);
  assert.deepEqual(
    peeked.map((count) => count.store === 'redis' && count.consumed),
    [2],
  );
  const untouched = await global.peek('all');
  assert.ok(untouched.store === 'redis' && untouched.consumed === 1);
  const fresh = await own.peek('nobody');
  assert.deepEqual(fresh, { store: 'redis', limit: 1, consumed: 0, reset_ms: WINDOW_S * 1000 });
});

test("counts land in rate-limiter-flexible's keys, so instances of the previous version share them", async () => {
  const key_prefix = `test:${randomUUID()}`;
  const library = new RateLimiterRedis({
    storeClient: redis,
    useRedisPackage: false,
    keyPrefix: `${key_prefix}:balance`,
    points: 10,
    duration: WINDOW_S,
  });
  await library.consume('user:alice');
  await library.consume('user:alice');
  const ours = store(key_prefix).counter('balance', 10);
  const count = await ours.consume('user:alice');
  assert.ok(count.store === 'redis' && count.consumed === 3);
  const seen = await library.get('user:alice');
  assert.equal(seen?.consumedPoints, 3);
  assert.ok((seen?.msBeforeNext ?? 0) > 0);
});

test('a key that holds something other than a count fails only its own request', async () => {
  const key_prefix = `test:${randomUUID()}`;
  const limits = store(key_prefix);
  const counter = limits.counter('c', 10);
  // With an expiry like the store's own keys: a test's keys must not outlive it in a developer's Redis.
  await redis.multi().hset(`${key_prefix}:c:broken`, 'x', '1').pexpire(`${key_prefix}:c:broken`, 60_000).exec();
  await redis.set(`${key_prefix}:c:text`, 'not a number', 'PX', 60_000);
  const before = scripts();
  const [good, broken, peeked, alsoGood] = await Promise.all([
    countInOrder([
      { counter, key: 'fine', op: 'consume' },
      { counter, key: 'fine2', op: 'consume' },
    ]),
    countInOrder([
      { counter, key: 'fine3', op: 'consume' },
      { counter, key: 'broken', op: 'consume' },
    ]),
    countInOrder([{ counter, key: 'text', op: 'peek' }]),
    counter.consume('fine'),
  ]);
  assert.equal(scripts() - before, 1);
  assert.deepEqual(
    good.map((count) => count.store === 'redis' && count.consumed),
    [1, 1],
  );
  assert.equal(alsoGood.store === 'redis' && alsoGood.consumed, 2);
  // The failed requests were counted in memory instead (the store then skips Redis for a moment).
  assert.deepEqual(
    broken.map((count) => count.store),
    ['memory', 'memory'],
  );
  assert.deepEqual(
    peeked.map((count) => count.store),
    ['memory'],
  );
});

test('past counts_pending_max a request is counted as Redis being down (in memory), not queued', async () => {
  const log = captureLines();
  const limits = createRateLimitStore({
    name: 'bounded',
    counters: rateLimitCounters(redis),
    key_prefix: `test:${randomUUID()}`,
    log: createLogger('warn', log.stream),
    on_redis_down: 'per_instance',
    timeout_ms: 1000,
    counts_pending_max: 2,
  });
  const counter = limits.counter('c', 100);
  // Asked in one moment: two counts wait for Redis, which is all the store allows.
  const counts = await Promise.all([counter.consume('k'), counter.consume('k'), counter.consume('k')]);
  assert.deepEqual(
    counts.map((count) => count.store),
    ['redis', 'redis', 'memory'],
  );
  const [line] = log.lines().filter((entry) => entry.msg === 'rate limits cannot reach redis');
  assert.match(String(line?.err), /2 rate-limit counts are already waiting for redis/);
});
