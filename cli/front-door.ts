import { createLogger } from '../logger.ts';
import { createInstanceRegistry } from '../persistence/instances.ts';
import { createRedis } from '../persistence/redis.ts';
import { registryTable, startFrontDoor, type FrontDoorMode } from '../front-door.ts';

// The shard-aware front door (front-door.ts) as a process: `npm run front-door`, or the compose file's
// `front-door` service. Its settings, all from the environment:
//   PORT (3000), HOST (0.0.0.0)
//   FRONT_DOOR_UPSTREAMS   comma-separated gateway URLs to fall back on (default: the live instances)
//   FRONT_DOOR_MODE        shard (default) or round-robin (no affinity, to compare)
//   FRONT_DOOR_REFRESH_MS  how often the shard table is read from Redis (1000)
//   FRONT_DOOR_TIMEOUT_MS  a whole proxied request (15000: above the gateways' REQUEST_DEADLINE_MS)
//   REDIS_URL, REDIS_KEY_PREFIX, SHARDS  the cluster's, as the gateways have them
//   BODY_SIZE_MAX_BYTES    larger bodies are refused here (10 MiB: the gateways' own limit is lower)
//   LOG_LEVEL

const env = process.env;

function integer(name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${raw}`);
  }
  return value;
}

const mode = (env.FRONT_DOOR_MODE || 'shard') as FrontDoorMode;
if (mode !== 'shard' && mode !== 'round-robin') throw new Error(`FRONT_DOOR_MODE must be shard or round-robin`);
const upstreams = (env.FRONT_DOOR_UPSTREAMS ?? '')
  .split(',')
  .map((url) => url.trim().replace(/\/$/, ''))
  .filter(Boolean);
for (const url of upstreams) if (!URL.canParse(url)) throw new Error(`FRONT_DOOR_UPSTREAMS: not a URL: ${url}`);
const shards = integer('SHARDS', 64, 1, 4096);
const prefix = env.REDIS_KEY_PREFIX ?? 'pgw:';
const redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = createLogger(env.LOG_LEVEL || 'info').child({ module: 'front-door' });

const redis = createRedis(redisUrl, 'front-door');
const subscriber = createRedis(redisUrl, 'front-door-subscriber');
const registry = createInstanceRegistry(redis, subscriber, prefix);
const frontDoor = await startFrontDoor({
  host: env.HOST || '0.0.0.0',
  port: integer('PORT', 3000, 0, 65535),
  upstreams,
  shards,
  mode,
  readTable: registryTable(registry, shards),
  onChange: (listener) =>
    registry.onAnnounced(listener, (error) =>
      log.warn({ err: error }, 'could not subscribe to the cluster channel; reading the table on the timer only'),
    ),
  refresh_ms: integer('FRONT_DOOR_REFRESH_MS', 1000, 50, 60_000),
  timeout_ms: integer('FRONT_DOOR_TIMEOUT_MS', 15_000, 100, 600_000),
  body_max_bytes: integer('BODY_SIZE_MAX_BYTES', 10 * 1024 * 1024, 1, 100 * 1024 * 1024),
  keys_max: 100_000,
  log,
});

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, stats: frontDoor.stats() }, 'front door stopping');
    void frontDoor
      .close()
      .finally(() => Promise.allSettled([redis.quit(), subscriber.quit()]))
      .finally(() => process.exit(0));
  });
}
