import type { Redis } from 'ioredis';
import { listenTo } from './redis.ts';

/** What an instance tells the others about itself, refreshed with every lease renewal. */
export interface InstanceRecord {
  id: string;
  /** Where the other instances reach it (forwarded requests). */
  url: string;
  started_at: string;
  /** Live account actors per shard it owns. */
  actors: Record<string, number>;
}

/**
 * The instance registry in Redis: one key per instance that expires unless refreshed (so a dead or
 * paused instance drops out on its own), and a set naming them so they can be listed without SCAN.
 * Changes are announced on a channel so the others rebalance at once instead of at their next tick.
 */
/** The member set outlives an instance's own key by this factor, so a live member is never dropped. */
const MEMBERS_TTL_HEARTBEATS = 2;

export function createInstanceRegistry(redis: Redis, subscriber: Redis, prefix: string) {
  const members = `${prefix}instances`;
  const keyOf = (id: string) => `${prefix}instance:${id}`;
  const ownerKey = (shard: number) => `${prefix}shard-owner:${shard}`;
  const channel = `${prefix}cluster`;

  return {
    /**
     * Registers an instance for `ttl_ms`. The member set expires too (twice as late), so that when every
     * instance of a cluster has died, nothing of it stays in Redis; any live instance keeps it.
     */
    async heartbeat(record: InstanceRecord, ttl_ms: number): Promise<void> {
      await redis
        .multi()
        .set(keyOf(record.id), JSON.stringify(record), 'PX', ttl_ms)
        .sadd(members, record.id)
        .pexpire(members, ttl_ms * MEMBERS_TTL_HEARTBEATS)
        .exec();
    },

    /** The instances alive now; members whose key expired are pruned from the set. */
    async live(): Promise<InstanceRecord[]> {
      const ids = await redis.smembers(members);
      if (ids.length === 0) return [];
      const values = await redis.mget(ids.map(keyOf));
      const gone = ids.filter((_, i) => values[i] === null);
      if (gone.length > 0) await redis.srem(members, ...gone);
      return values.flatMap((value) => (value === null ? [] : [JSON.parse(value) as InstanceRecord]));
    },

    async leave(id: string): Promise<void> {
      await redis.multi().del(keyOf(id)).srem(members, id).exec();
    },

    /** Tells the others that membership or ownership changed. */
    async announce(id: string): Promise<void> {
      await redis.publish(channel, id);
    },

    /** Calls `listener` with the announcing instance's id whenever any instance (this one too) announces. */
    onAnnounced(listener: (from: string) => void, onSubscribeError: (error: unknown) => void): void {
      listenTo(subscriber, channel, listener, onSubscribeError);
    },

    /** Records who holds a shard's lease, for routing; expires with the lease unless renewed. */
    async claim(shards: number[], id: string, ttl_ms: number): Promise<void> {
      if (shards.length === 0) return;
      const batch = redis.multi();
      for (const shard of shards) batch.set(ownerKey(shard), id, 'PX', ttl_ms);
      await batch.exec();
    },

    /** Drops the routing entries of shards given up, only where they still name `id`. */
    async unclaim(shards: number[], id: string): Promise<void> {
      if (shards.length === 0) return;
      const batch = redis.pipeline();
      for (const shard of shards) {
        batch.eval(
          "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
          1,
          ownerKey(shard),
          id,
        );
      }
      await batch.exec();
    },

    /** The holder of every shard's lease (undefined where none), and when each lease ends. */
    async owners(shards: number): Promise<{ owner: string | undefined; expires_at: number | undefined }[]> {
      const keys = Array.from({ length: shards }, (_, shard) => ownerKey(shard));
      const batch = redis.multi().mget(keys);
      for (const key of keys) batch.pttl(key);
      const results = (await batch.exec()) ?? [];
      const [, owners] = results[0] as [Error | null, (string | null)[]];
      const now = Date.now();
      return keys.map((_, shard) => {
        const ttl = results[shard + 1]?.[1] as number | undefined;
        return {
          owner: owners[shard] ?? undefined,
          expires_at: ttl !== undefined && ttl > 0 ? now + ttl : undefined,
        };
      });
    },
  };
}

export type InstanceRegistry = ReturnType<typeof createInstanceRegistry>;
