import { createHash } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { InstanceRecord, InstanceRegistry } from '../persistence/instances.ts';
import type { LeaseStore } from '../persistence/leases.ts';
import type { ShardLock, ShardLocks } from '../persistence/shard-locks.ts';
import type { Ownership } from './shards.ts';

export interface ShardLeaseOptions {
  /** The shards' locks in Redis (persistence/shard-locks.ts). */
  locks: ShardLocks;
  instances: InstanceRegistry;
  leases: LeaseStore;
  instance: { id: string; url: string };
  shards: number;
  /** A lease's life in Redis; renewed every third of it. */
  lease_ms: number;
  log: Logger;
}

/** What the rest of the engine does when ownership changes; told to `listen` before `start`. */
export interface ShardListener {
  /** Live actors per shard on this instance, for the shard table. */
  actorsPerShard: () => Map<number, number>;
  /** Shards just taken (epoch bumped): resume their open payments. */
  acquired: (shards: number[]) => void;
  /** Shards no longer ours: stop their actors and workers at once. */
  lost: (shards: number[]) => void;
}

export interface ShardRow {
  shard: number;
  owner: string | null;
  epoch: string;
  lease_expires_at: string | null;
  actors_alive: number | null;
}

/** Ownership across instances, plus where to send a request for a shard owned elsewhere. */
export interface ShardLeases extends Ownership {
  owns(shard: number): boolean;
  /** The instance holding a shard's lease, as last read (refreshed every tick); undefined when none. */
  ownerOf(shard: number): { id: string; url: string } | undefined;
  /** Re-reads who owns what (a request that found no owner waits on this). */
  refresh(): Promise<void>;
  /** Shard, owner, epoch, lease expiry and actors alive, for the admin. */
  table(): Promise<{ instances: InstanceRecord[]; shards: ShardRow[] }>;
  /** Registers this instance and starts renewing and rebalancing; resolves after the first round. */
  start(): Promise<void>;
  /** Gives every lease back and leaves the cluster, so the others take over at once. */
  stop(): Promise<void>;
  /** Takes no more shards (an instance shutting down must not take over its stopping peers'). */
  drain(): void;
  /** Who is told of ownership changes (the registry, the payment workers); set before `start`. */
  listen(listener: ShardListener): void;
}

/**
 * Shard ownership across instances. Every tick (a third of the lease) an instance renews its own
 * registration and leases, reads who is alive, and computes by rendezvous hashing which shards are
 * its share: it gives back the ones no longer its share and takes the ones that are (a lock in Redis,
 * then a new fencing epoch in Postgres). A lease that cannot be renewed, or whose local
 * expiry passed (a paused process), is dropped before any other instance can take it; the epoch
 * check in the journal refuses whatever a paused owner still tries to append.
 */
export function startShardLeases(options: ShardLeaseOptions): ShardLeases {
  const { locks: shardLocks, instances, leases, instance, shards, lease_ms, log } = options;
  const held = new Map<number, { lock: ShardLock; epoch: bigint }>();
  const started_at = new Date().toISOString();
  let routing: ({ id: string; url: string } | undefined)[] = [];
  let stopped = false;
  // Shutting down: keep (and renew) what is held until `stop`, but take nothing more.
  let draining = false;
  let running: Promise<void> | undefined;
  // Nobody listens until the engine says who does (ShardLeases.listen), which it does before `start`.
  let listener: ShardListener = { actorsPerShard: () => new Map(), acquired: () => {}, lost: () => {} };
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  let renewer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> | undefined;
  const period_ms = Math.max(50, Math.floor(lease_ms / 3));
  let refreshing: Promise<void> | undefined;

  function lose(lost: number[], reason: string, level: 'info' | 'warn' = 'warn'): void {
    const gone = lost.filter((shard) => held.has(shard));
    if (gone.length === 0) return;
    const locks = gone.map((shard) => held.get(shard)!.lock);
    for (const shard of gone) held.delete(shard);
    listener.lost(gone);
    log[level]({ shards: gone, reason }, 'shards lost');
    void Promise.all(locks.map((lock) => shardLocks.release(lock)));
    void instances.unclaim(gone, instance.id).catch(() => undefined);
  }

  /**
   * Keeps this instance registered and its leases alive. It runs on a timer of its own, apart from
   * rebalancing, so that a slow takeover (waiting on Postgres) never delays a renewal.
   */
  async function renew(): Promise<void> {
    const expired = [...held].filter(([, lease]) => lease.lock.expires_at <= Date.now()).map(([shard]) => shard);
    lose(expired, 'lease expired before renewal (was this process paused?)');
    try {
      await instances.heartbeat(record(), lease_ms);
      const results = await Promise.all(
        [...held].map(async ([shard, lease]) => {
          const renewed = await shardLocks.extend(lease.lock, lease_ms);
          if (!renewed) return { shard, ok: false };
          if (held.get(shard) === lease) lease.lock = renewed;
          return { shard, ok: true };
        }),
      );
      lose(
        results.filter((result) => !result.ok).map((result) => result.shard),
        'lease renewal failed',
      );
      await instances.claim([...held.keys()], instance.id, lease_ms);
    } catch (error) {
      log.warn({ err: error }, 'lease renewal round failed');
    }
  }

  function renewSoon(): void {
    if (stopped) return;
    renewer = setTimeout(() => {
      renewing = renew().finally(() => {
        renewing = undefined;
        renewSoon();
      });
    }, period_ms);
  }

  async function acquire(wanted: number[], live: Set<string>): Promise<number[]> {
    const locks = new Map<number, ShardLock>();
    await Promise.all(
      wanted.map(async (shard) => {
        const lock = await shardLocks.acquire(shard, lease_ms);
        // None: still held by its previous owner, who gives it back when it sees us, or it expires.
        if (lock) locks.set(shard, lock);
      }),
    );
    if (locks.size === 0) return [];
    let epochs: Map<number, bigint>;
    try {
      epochs = await takeOver([...locks.keys()], live);
    } catch (error) {
      log.warn({ err: error }, 'could not record the new epochs; giving the leases back');
      await Promise.all([...locks.values()].map((lock) => shardLocks.release(lock)));
      return [];
    }
    const taken: number[] = [];
    for (const [shard, lock] of locks) {
      const epoch = epochs.get(shard);
      // The epoch write may have outlasted the lock (a stall): then the lease was never safely ours.
      if (epoch === undefined || lock.expires_at <= Date.now()) continue;
      held.set(shard, { lock, epoch });
      taken.push(shard);
    }
    await instances.claim(taken, instance.id, lease_ms);
    return taken.sort((a, b) => a - b);
  }

  /**
   * Bumps the epochs. When the lease rows stay locked (a previous owner paused inside a transaction:
   * its lease has expired and it has left the registry), its sessions are ended and the takeover retried.
   */
  async function takeOver(shards: number[], live: Set<string>): Promise<Map<number, bigint>> {
    try {
      // Waiting longer on the lease rows than a third of the lease would leave too little of it.
      return await leases.takeOver(instance.id, shards, null, period_ms);
    } catch (error) {
      if ((error as { code?: string }).code !== '55P03') throw error;
      const wanted = new Set(shards);
      const previous = (await leases.list()).filter((row) => wanted.has(row.shard)).map((row) => row.owner);
      const stale = [...new Set(previous)].filter((owner): owner is string => !!owner && !live.has(owner));
      if (stale.length === 0) throw error;
      const ended = await leases.fenceOut(stale);
      log.warn({ owners: stale, sessions: ended, shards }, 'ended the sessions of a stale owner blocking a takeover');
      return leases.takeOver(instance.id, shards, null, period_ms);
    }
  }

  async function readRouting(live?: InstanceRecord[]): Promise<void> {
    const [owners, members] = await Promise.all([instances.owners(shards), live ?? instances.live()]);
    const urls = new Map(members.map((member) => [member.id, member.url]));
    routing = owners.map(({ owner }) => {
      const url = owner === undefined ? undefined : urls.get(owner);
      return owner !== undefined && url !== undefined ? { id: owner, url } : undefined;
    });
  }

  async function tick(): Promise<void> {
    let changed = false;
    try {
      const live = await instances.live();
      const ids = [...new Set([instance.id, ...live.map((member) => member.id)])];
      const share = new Set(
        Array.from({ length: shards }, (_, shard) => shard).filter((s) => rendezvousOwner(s, ids) === instance.id),
      );
      const surplus = [...held.keys()].filter((shard) => !share.has(shard));
      if (surplus.length > 0) {
        // Expected whenever an instance joins: not worth a warning.
        lose(surplus, 'rebalanced to another instance', 'info');
        changed = true;
      }
      const taken = await acquire(
        [...share].filter((shard) => !held.has(shard)),
        new Set(ids),
      );
      if (taken.length > 0) {
        log.info({ shards: taken, owned: held.size }, 'shards acquired');
        listener.acquired(taken);
        changed = true;
      }
      await readRouting(live);
      if (changed) await instances.announce(instance.id);
    } catch (error) {
      log.warn({ err: error }, 'shard rebalance round failed');
    }
  }

  /** Runs a tick now, or right after the one running; ticks never overlap. */
  function run(): Promise<void> {
    if (stopped || draining) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    clearTimeout(timer);
    running = tick().finally(() => {
      running = undefined;
      if (stopped) return;
      if (again) {
        again = false;
        void run();
      } else {
        timer = setTimeout(() => void run(), period_ms);
      }
    });
    return running;
  }

  function record(): InstanceRecord {
    const actors: Record<string, number> = {};
    for (const [shard, count] of listener.actorsPerShard()) actors[shard] = count;
    return { id: instance.id, url: instance.url, started_at, actors };
  }

  // Another instance joined, left or moved shards: rebalance now rather than at the next tick.
  instances.onAnnounced(
    (from) => {
      if (from !== instance.id) void run();
    },
    (error) => log.warn({ err: error }, 'could not subscribe to the cluster channel; rebalancing on the timer only'),
  );

  let ready: Promise<void> | undefined;

  return {
    listen(next: ShardListener): void {
      listener = next;
    },
    shards,
    start() {
      ready ??= (async () => {
        await instances.heartbeat(record(), lease_ms).catch((error: unknown) => {
          log.warn({ err: error }, 'could not register this instance yet');
        });
        renewSoon();
        await run();
      })();
      return ready;
    },
    epochOf(shard) {
      const lease = held.get(shard);
      return lease && lease.lock.expires_at > Date.now() ? lease.epoch : undefined;
    },
    owns(shard) {
      const lease = held.get(shard);
      return lease !== undefined && lease.lock.expires_at > Date.now();
    },
    lose: (shard) => lose([shard], 'an append was refused: another instance holds a newer epoch'),
    owned: () => [...held.keys()].sort((a, b) => a - b),
    ownerOf: (shard) => routing[shard],
    refresh: () => (refreshing ??= readRouting().finally(() => (refreshing = undefined))),
    async table() {
      const [live, owners, rows] = await Promise.all([instances.live(), instances.owners(shards), leases.list()]);
      const actors = new Map(live.map((member) => [member.id, member.actors]));
      const epochs = new Map(rows.map((row) => [row.shard, row.epoch]));
      return {
        instances: live,
        shards: owners.map(({ owner, expires_at }, shard) => ({
          shard,
          owner: owner ?? null,
          epoch: (epochs.get(shard) ?? 0n).toString(),
          lease_expires_at: expires_at === undefined ? null : new Date(expires_at).toISOString(),
          actors_alive: owner === undefined ? null : (actors.get(owner)?.[shard] ?? 0),
        })),
      };
    },
    drain() {
      draining = true;
      clearTimeout(timer);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(renewer);
      await Promise.all([running, renewing]);
      const all = [...held.keys()];
      const locks = [...held.values()].map((lease) => lease.lock);
      held.clear();
      if (all.length > 0) listener.lost(all);
      await Promise.all(locks.map((lock) => shardLocks.release(lock)));
      await Promise.allSettled([instances.unclaim(all, instance.id), instances.leave(instance.id)]);
      await instances.announce(instance.id).catch(() => undefined);
    },
  };
}

/**
 * Rendezvous hashing: a shard belongs to the live instance scoring highest for it, so when one joins
 * or leaves, only that instance's share moves.
 */
export function rendezvousOwner(shard: number, ids: string[]): string | undefined {
  let best: { id: string; score: bigint } | undefined;
  for (const id of ids) {
    const score = createHash('sha256').update(`${id}#${shard}`).digest().readBigUInt64BE(0);
    if (!best || score > best.score || (score === best.score && id < best.id)) best = { id, score };
  }
  return best?.id;
}
