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
