import type { Redis } from 'ioredis';
import Redlock, { type Lock } from 'redlock';

/** A shard's lock as held in Redis: renewed with `extend`, given back with `release`. */
export interface ShardLock {
  readonly shard: number;
  /** When the lock ends in Redis unless extended (epoch ms). */
  readonly expires_at: number;
}

/** The Redis side of shard leases: one redlock lock per shard, with no retries (a round tries again). */
export interface ShardLocks {
  /** Takes a shard's lock for `lease_ms`; undefined while another instance holds it. */
  acquire(shard: number, lease_ms: number): Promise<ShardLock | undefined>;
  /** Extends a held lock by `lease_ms` from now; undefined when it could not be (lost or Redis down). */
  extend(lock: ShardLock, lease_ms: number): Promise<ShardLock | undefined>;
  /** Gives a lock back; false when Redis could not be told (the lock then expires on its own). */
  release(lock: ShardLock): Promise<boolean>;
}

/**
 * Shard locks on one Redis with redlock (5 beta: its types need the ambient declaration in
 * `types/redlock.d.ts`). No quorum of independent masters: fencing epochs in Postgres, not the lock,
 * are what refuse a stale owner's writes.
 */
export function createShardLocks(redis: Redis, key_prefix: string): ShardLocks {
  const redlock = new Redlock([redis], { retryCount: 0, driftFactor: 0.01 });
  const locks = new WeakMap<ShardLock, Lock>();
  const keyOf = (shard: number) => `${key_prefix}shard-lease:${shard}`;

  function held(shard: number, lock: Lock): ShardLock {
    // A copy, not redlock's field: redlock zeroes a lock's expiration as soon as an extension starts,
    // but the lock in Redis stays valid until then, so requests meanwhile must not be refused.
    const made: ShardLock = { shard, expires_at: lock.expiration };
    locks.set(made, lock);
    return made;
  }

  function lockOf(lock: ShardLock): Lock {
    const found = locks.get(lock);
    if (!found) throw new Error(`shard ${lock.shard}: not a lock these shard locks made`);
    return found;
  }

  return {
    async acquire(shard, lease_ms) {
      try {
        return held(shard, await redlock.acquire([keyOf(shard)], lease_ms));
      } catch {
        return undefined;
      }
    },
    async extend(lock, lease_ms) {
      const current = lockOf(lock);
      try {
        return held(lock.shard, await current.extend(lease_ms));
      } catch {
        return undefined;
      }
    },
    async release(lock) {
      const current = lockOf(lock);
      try {
        await current.release();
        return true;
      } catch {
        return false;
      }
    },
  };
}
