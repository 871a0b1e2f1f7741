import type { LeaseStore } from '../persistence/leases.ts';

/** The shard of a user: FNV-1a of its id, modulo the shard count. Stable across processes. */
export function shardOf(user_id: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < user_id.length; i += 1) {
    hash ^= user_id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

/** Which shards this instance owns, with the fencing epoch each append must carry. */
export interface Ownership {
  readonly shards: number;
  epochOf(shard: number): bigint | undefined;
  /** Called when an append was refused for a stale epoch: the shard is no longer ours. */
  lose(shard: number): void;
  owned(): number[];
}

/**
 * Single-instance ownership: takes every shard (bumping the epochs, which fences out any earlier
 * owner) and keeps them until an append proves another instance took one over. While Postgres is
 * unreachable it keeps trying, and until then it owns nothing (requests get 503).
 */
export function ownAllShards(
  leases: LeaseStore,
  options: { instance: string; shards: number; retry_ms: number; onError: (error: unknown) => void },
): Ownership & { ready: Promise<void>; stop(): void } {
  const epochs = new Map<number, bigint>();
  const all = Array.from({ length: options.shards }, (_, shard) => shard);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const ready = new Promise<void>((resolve) => {
    const attempt = () => {
      leases.takeOver(options.instance, all, null).then(
        (taken) => {
          for (const [shard, epoch] of taken) epochs.set(shard, epoch);
          resolve();
        },
        (error: unknown) => {
          options.onError(error);
          if (!stopped) timer = setTimeout(attempt, options.retry_ms);
        },
      );
    };
    attempt();
  });
  return {
    shards: options.shards,
    ready,
    epochOf: (shard) => epochs.get(shard),
    lose: (shard) => void epochs.delete(shard),
    owned: () => [...epochs.keys()].sort((a, b) => a - b),
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
