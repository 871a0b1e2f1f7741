import { ACTORS_LIVE_MAX_DEFAULT } from '../config.ts';
import nact from 'nact';
import type { Context } from '@opentelemetry/api';
import type { Logger } from '../logger.ts';
import { ATTRIBUTES as A, currentContext, endSpan, linksTo, startSpan, withSpan } from '../tracing.ts';
import { shardOf } from './shards.ts';
import {
  accountBehaviour,
  type AccountBehaviour,
  type AccountDeps,
  type ActorReply,
  type ActorRequest,
} from './account-actor.ts';

interface Waiting {
  request: ActorRequest;
  resolve: (reply: ActorReply) => void;
  /** The asker's trace context (tracing on only): the turn that handles the request continues it. */
  trace?: Context;
}

interface Entry {
  ref: nact.Ref<'drain'>;
  behaviour: AccountBehaviour;
  /** The mailbox: requests not yet handed to the actor, bounded by `mailbox_max`. */
  mailbox: Waiting[];
  drainScheduled: boolean;
  busy: boolean;
  last_used_ms: number;
}

/** The sweeper looks for idle actors this often, at least (half of `idle_ms` otherwise). */
const IDLE_SWEEP_MS_MIN = 50;

/**
 * When the registry is full, how many of the least recently used actors it looks at for an idle one
 * to evict: a bound on the work one spawn can cost. The ones in front were asked least recently, so
 * they are busy only while a long turn (a recovery, a slow commit) runs.
 */
const EVICTION_CANDIDATES_MAX = 64;

export interface RegistryOptions {
  deps: AccountDeps;
  idle_ms: number;
  mailbox_max: number;
  /** Live actors at most; when full, the least recently used idle one is evicted, or the ask refused `busy`. */
  actors_live_max?: number;
  /** The most requests one actor turn takes from its mailbox (and commits together). */
  batch_max: number;
  ask_timeout_ms: number;
  log: Logger;
}

/**
 * The account actors of this instance: spawned on first use, one per user, passivated (snapshot,
 * then stop) once idle, dropped at once when their shard is lost. A request waits in the actor's
 * bounded mailbox; each actor turn drains what has gathered there and handles it as one batch.
 */
export function createRegistry(options: RegistryOptions) {
  const system = nact.start();
  // In least recently asked order: `ask` moves its actor to the end, so eviction looks at the front.
  const actors = new Map<string, Entry>();
  const actors_live_max = options.actors_live_max ?? ACTORS_LIVE_MAX_DEFAULT;
  let spawned = 0;
  let refusingFull = false;
  const sweeper = setInterval(() => void passivateIdle(), Math.max(IDLE_SWEEP_MS_MIN, Math.floor(options.idle_ms / 2)));
  sweeper.unref();

  /** The user's actor, moved to the most recently used end; a new one if there is room (or an idle one to evict). */
  function getOrSpawn(user_id: string): Entry | undefined {
    const existing = actors.get(user_id);
    if (existing) {
      actors.delete(user_id);
      actors.set(user_id, existing);
      return existing;
    }
    if (actors.size >= actors_live_max && !evictIdle()) return undefined;
    refusingFull = false;
    spawned += 1;
    const entry: Entry = {
      ref: undefined as unknown as nact.Ref<'drain'>,
      behaviour: accountBehaviour(user_id, options.deps),
      mailbox: [],
      drainScheduled: false,
      busy: false,
      last_used_ms: Date.now(),
    };
    // nact runs one message at a time per actor, even across awaits: that is the serialisation.
    entry.ref = nact.spawn(
      system,
      async (state: null) => {
        entry.drainScheduled = false;
        const batch = entry.mailbox.splice(0, options.batch_max);
        if (entry.mailbox.length > 0) scheduleDrain(entry);
        if (batch.length === 0) return state;
        entry.busy = true;
        const replies = await traceTurn(entry.behaviour, batch, () =>
          entry.behaviour.handle(batch.map((waiting) => waiting.request)),
        );
        entry.busy = false;
        entry.last_used_ms = Date.now();
        batch.forEach((waiting, i) => waiting.resolve(replies[i]!));
        return state;
      },
      `account-${spawned}`,
      { initialState: null },
    );
    actors.set(user_id, entry);
    return entry;
  }

  function scheduleDrain(entry: Entry): void {
    if (entry.drainScheduled) return;
    entry.drainScheduled = true;
    nact.dispatch(entry.ref, 'drain');
  }

  function enqueue(entry: Entry, request: ActorRequest): Promise<ActorReply> {
    const trace = currentContext();
    // A command keeps its asker's context: the payment its commit starts continues that trace.
    const sent = trace && request.kind === 'command' ? { ...request, trace } : request;
    return new Promise((resolve) => {
      entry.mailbox.push({ request: sent, resolve, trace });
      scheduleDrain(entry);
    });
  }

  /**
   * Runs an actor's turn under a span (tracing on): the child of the first asker's span, linked to
   * every other request the turn serves (a hot account's batch), so each one's trace reaches it.
   */
  function traceTurn<T>(behaviour: AccountBehaviour, batch: Waiting[], turn: () => Promise<T>): Promise<T> {
    const parent = batch.find((waiting) => waiting.trace)?.trace;
    if (!parent) return turn();
    const span = startSpan(
      'account turn',
      {
        attributes: { [A.user_id]: behaviour.user_id, [A.shard]: behaviour.shard, [A.commands]: batch.length },
        links: linksTo(batch.map((waiting) => (waiting.trace === parent ? undefined : waiting.trace))),
      },
      parent,
    );
    return withSpan(span, turn, parent).finally(() => endSpan(span));
  }

  /**
   * Stops the least recently used idle actor (nothing running, nothing waiting) to make room, at once
   * and without a snapshot: its state is in the journal, and recovery is bounded by the snapshots
   * taken every `snapshot_every_events`. A snapshot here would add a write per new account at the
   * moment memory is tightest, and the room would only be free once it committed.
   */
  function evictIdle(): boolean {
    let looked = 0;
    for (const [user_id, entry] of actors) {
      if (looked === EVICTION_CANDIDATES_MAX) break;
      looked += 1;
      if (entry.busy || entry.mailbox.length > 0) continue;
      actors.delete(user_id);
      nact.stop(entry.ref);
      options.log.debug({ user_id }, 'actor evicted: the registry is full');
      return true;
    }
    // One line when refusals start, not one per refused ask; a spawn clears it.
    if (!refusingFull)
      options.log.warn({ actors_live_max }, 'registry full and no idle actor to evict; refusing as busy');
    refusingFull = true;
    return false;
  }

  function drop(user_id: string): void {
    const entry = actors.get(user_id);
    if (!entry) return;
    actors.delete(user_id);
    nact.stop(entry.ref);
    for (const waiting of entry.mailbox.splice(0)) waiting.resolve({ kind: 'refused', reason: 'not_owned' });
  }

  async function passivate(user_id: string, entry: Entry): Promise<void> {
    actors.delete(user_id);
    await enqueue(entry, { kind: 'passivate' });
    nact.stop(entry.ref);
  }

  async function passivateIdle(): Promise<void> {
    const cutoff = Date.now() - options.idle_ms;
    const idle = [...actors].filter(([, e]) => !e.busy && e.mailbox.length === 0 && e.last_used_ms <= cutoff);
    for (const [user_id, entry] of idle) await passivate(user_id, entry);
  }

  return {
    /** Sends a request to the user's actor and waits (bounded) for its reply. */
    async ask(user_id: string, request: ActorRequest): Promise<ActorReply> {
      // An actor only lives where its shard is owned: elsewhere its state would go stale unseen.
      const { ownership } = options.deps;
      if (ownership.epochOf(shardOf(user_id, ownership.shards)) === undefined) {
        return { kind: 'refused', reason: 'not_owned' };
      }
      const entry = getOrSpawn(user_id);
      if (!entry || entry.mailbox.length >= options.mailbox_max) return { kind: 'refused', reason: 'busy' };
      entry.last_used_ms = Date.now();
      let timer: NodeJS.Timeout | undefined;
      // A timed-out ask is an unknown outcome: the actor may still handle the request.
      const timeout = new Promise<ActorReply>((resolve) => {
        timer = setTimeout(() => resolve({ kind: 'refused', reason: 'timeout' }), options.ask_timeout_ms);
      });
      const reply = await Promise.race([enqueue(entry, request), timeout]).finally(() => clearTimeout(timer));
      if (reply.kind === 'refused' && reply.reason === 'stale_epoch') drop(user_id);
      return reply;
    },

    /** Stops every actor of a shard this instance no longer owns. */
    dropShard(shard: number): void {
      for (const [user_id, entry] of actors) if (entry.behaviour.shard === shard) drop(user_id);
    },

    alive: () => actors.size,
    /** Live actors per shard. */
    perShard(): Map<number, number> {
      const counts = new Map<number, number>();
      for (const entry of actors.values())
        counts.set(entry.behaviour.shard, (counts.get(entry.behaviour.shard) ?? 0) + 1);
      return counts;
    },
    mailboxDepth: () => [...actors.values()].reduce((sum, entry) => sum + entry.mailbox.length, 0),
    isAlive: (user_id: string) => actors.has(user_id),

    /** Passivates every idle actor now (what the sweeper does on its own schedule). */
    passivateIdle,

    /** Snapshots and stops every actor, then the actor system. */
    async close(): Promise<void> {
      clearInterval(sweeper);
      await Promise.all([...actors].map(([user_id, entry]) => passivate(user_id, entry)));
      nact.stop(system);
    },
  };
}

export type Registry = ReturnType<typeof createRegistry>;
