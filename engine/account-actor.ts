import type { Context } from '@opentelemetry/api';
import type { Logger } from '../logger.ts';
import { keySlot, type IdempotencyRecord } from '../persistence/idempotency.ts';
import type { InboxRecord } from '../persistence/inbox.ts';
import type { Journal, JournalEvent } from '../persistence/journal.ts';
import { toReadModelRow, type ReadModelRow } from '../persistence/transaction-row.ts';
import type { SnapshotStore } from '../persistence/snapshots.ts';
import {
  apply,
  step,
  decide,
  emptyAccount,
  type AccountState,
  type Command,
  type Event,
  type Outcome,
  type Change,
} from './account.ts';
import { eventFromStored, outcomeToStored, stateFromStored, stateToStored, toStored } from './account-codec.ts';
import { shardOf, type Ownership } from './shards.ts';

export type CommandRequest = {
  kind: 'command';
  command: Command;
  /**
   * The command's idempotency key: its outcome is recorded under it in the same commit. `note` is JSON
   * the edge wants back with the outcome on a replay (kept as given, never read by the engine).
   */
  idempotency?: { caller: string; key: string; fingerprint: string; note?: unknown };
  /** The bank callback that carried the command: recorded in the commit of its events, if it has any. */
  receipt?: InboxRecord;
  /** The trace context of whoever asked (set by the registry while tracing is on). */
  trace?: Context;
};

export type ActorRequest = CommandRequest | { kind: 'read' } | { kind: 'passivate' };

/** Why a command was not done; `uncertain`: the journal's link failed mid-commit, so it may have been. */
export type Refusal =
  'not_owned' | 'stale_epoch' | 'idempotency_conflict' | 'failed' | 'uncertain' | 'busy' | 'timeout';

export type ActorReply =
  { kind: 'done'; outcome: Outcome } | { kind: 'state'; state: AccountState } | { kind: 'refused'; reason: Refusal };

export interface AccountDeps {
  journal: Journal;
  snapshots: SnapshotStore;
  readEvents: (user_id: string, after_seq: number) => AsyncIterable<{ seq: number; payload: unknown }>;
  ownership: Ownership;
  snapshot_every_events: number;
  log: Logger;
  /**
   * Told of every commit, after it is applied (payment workers, live views, metrics): the state after
   * it, and each event with its transaction as the event left it — folded once, here, for everyone.
   * `traces`: while tracing is on, the trace context of the request behind each change (a payment
   * continues it).
   */
  onCommitted?: (state: AccountState, changes: readonly Change[], traces?: readonly (Context | undefined)[]) => void;
  /** Told once an account is recovered, with the transactions still open. */
  onRecovered?: (state: AccountState) => void;
}

/** Commands decided together against one evolving state, to be committed in one append. */
interface Draft {
  next: AccountState;
  changes: Change[];
  /** The trace context of the request behind each change, when tracing is on. */
  traces: (Context | undefined)[];
  rows: Map<string, ReadModelRow>;
  idempotency: IdempotencyRecord[];
  inbox: InboxRecord[];
  replies: ActorReply[];
}

/**
 * One account's behaviour behind its actor: recover (apply only), then for the commands waiting in
 * its mailbox decide → append them in one commit and await it → apply → reply. The actor runs one
 * batch at a time, so a hot account costs one commit per batch rather than one per request.
 *
 * A class, not closures: a gateway holds up to `ACTORS_LIVE_MAX` of these, and methods on the
 * prototype cost nothing per account where seven closures cost ~1.5 KiB each (bench/actor-memory.ts).
 * For the same reason an account logs through the engine's logger with its ids on each line, not
 * through a logger child of its own.
 */
export class AccountBehaviour {
  readonly shard: number;
  private state: AccountState | undefined;
  private snapshotSeq = 0;
  private inFlightSnapshot: Promise<void> | undefined;

  constructor(
    readonly user_id: string,
    private readonly deps: AccountDeps,
  ) {
    this.shard = shardOf(user_id, deps.ownership.shards);
  }

  /** Handles a batch of requests in arrival order; never throws (nact would swallow it). */
  async handle(requests: ActorRequest[]): Promise<ActorReply[]> {
    try {
      this.state ??= await this.recover();
      const commands = requests.filter((request): request is CommandRequest => request.kind === 'command');
      const commandReplies = commands.length > 0 ? await this.execute(this.state, commands) : [];
      const refused = (reason: Refusal) =>
        commandReplies.some((reply) => reply.kind === 'refused' && reply.reason === reason);
      // After a failed write the commit may or may not have happened: recover from the journal.
      if (refused('failed') || refused('uncertain')) this.state = undefined;
      if (refused('stale_epoch')) this.deps.ownership.lose(this.shard);
      if (requests.some((request) => request.kind === 'passivate')) await this.snapshot();
      const current = this.state;
      let next = 0;
      return requests.map((request) => {
        if (request.kind === 'command') return commandReplies[next++]!;
        return current ? { kind: 'state', state: current } : refusedFailed();
      });
    } catch (error) {
      this.log('error', { err: error }, 'account actor failed');
      this.state = undefined;
      return requests.map(() => refusedFailed());
    }
  }

  private log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    this.deps.log[level]({ user_id: this.user_id, shard: this.shard, ...fields }, message);
  }

  private async recover(): Promise<AccountState> {
    const { user_id, deps } = this;
    const snapshot = await deps.snapshots.latest(user_id);
    let recovered = snapshot ? stateFromStored(snapshot.state) : undefined;
    if (snapshot && !recovered) {
      this.log('warn', { seq: snapshot.seq }, 'snapshot unreadable; replaying the whole journal');
    }
    if (recovered && (recovered.user_id !== user_id || recovered.seq !== snapshot?.seq)) recovered = undefined;
    let next = recovered ?? emptyAccount(user_id);
    for await (const row of deps.readEvents(user_id, next.seq)) {
      if (row.seq !== next.seq + 1) throw new Error(`journal gap for ${user_id}: ${next.seq} then ${row.seq}`);
      next = apply(next, eventFromStored(row.payload));
    }
    this.snapshotSeq = recovered?.seq ?? 0;
    deps.onRecovered?.(next);
    return next;
  }

  private draft(current: AccountState, requests: CommandRequest[]): Draft {
    const result: Draft = {
      next: current,
      changes: [],
      traces: [],
      rows: new Map(),
      idempotency: [],
      inbox: [],
      replies: [],
    };
    const keys = new Set<string>();
    for (const request of requests) {
      // A retry queued behind its original (whose client gave up waiting) is not run again: refused as a
      // conflict once the original commits, it gets the original's answer from the edge (or 422 when
      // its body differs), just as if it had arrived a moment later.
      const slot = request.idempotency && keySlot(request.idempotency.caller, request.idempotency.key);
      if (slot !== undefined && keys.has(slot)) {
        result.replies.push({ kind: 'refused', reason: 'idempotency_conflict' });
        continue;
      }
      if (slot !== undefined) keys.add(slot);
      const decision = decide(result.next, request.command);
      let outcome: Outcome = decision.kind === 'accepted' ? { kind: 'noop', reason: 'not_open' } : decision;
      if (decision.kind === 'accepted') {
        for (const event of decision.events) {
          const { state: next, change } = step(result.next, event);
          result.rows.set(change.transaction.id, toReadModelRow(change.transaction));
          result.next = next;
          result.changes.push(change);
          result.traces.push(request.trace);
          outcome = { kind: 'accepted', transaction: change.transaction };
        }
        if (request.receipt) result.inbox.push(request.receipt);
      }
      const idem = request.idempotency;
      if (idem) {
        const { caller, key, fingerprint, note } = idem;
        const kept = { outcome, request_id: request.command.request_id, ...(note !== undefined ? { note } : {}) };
        result.idempotency.push({
          caller,
          key,
          fingerprint,
          user_id: this.user_id,
          answer: { outcome: outcomeToStored(kept) },
        });
      }
      result.replies.push({ kind: 'done', outcome });
    }
    return result;
  }

  private async execute(current: AccountState, requests: CommandRequest[]): Promise<ActorReply[]> {
    const { user_id, shard, deps } = this;
    const epoch = deps.ownership.epochOf(shard);
    if (epoch === undefined) return requests.map(() => ({ kind: 'refused', reason: 'not_owned' }));
    const planned = this.draft(current, requests);
    if (planned.changes.length === 0 && planned.idempotency.length === 0) return planned.replies;
    const journaled = planned.changes.map(({ event }) => journalEvent(event));
    const result = await deps.journal.append({
      user_id,
      shard,
      epoch,
      first_seq: current.seq + 1,
      events: journaled,
      rows: [...planned.rows.values()],
      idempotency: planned.idempotency,
      ...(planned.inbox.length > 0 ? { inbox: planned.inbox } : {}),
    });
    if (!result.ok) {
      // One conflicting key or one bad command must not refuse the others: commit each on its own. Not
      // after an uncertain commit: it may have happened, so every command's outcome is unknown (its
      // key tells), and a second try would only fail on its sequence number and be reported as failed.
      const alone = result.reason === 'idempotency_conflict' || result.reason === 'failed';
      if (alone && requests.length > 1) return this.executeOneByOne(requests);
      return requests.map(() => ({ kind: 'refused', reason: result.reason }));
    }
    this.state = planned.next;
    planned.changes.forEach(({ event }, i) => {
      const { transaction_id, request_id } = journaled[i]!;
      const cause = event.type === 'transaction_created' ? 'api' : event.cause;
      this.log('info', { transaction_id, request_id, event: event.type, cause }, 'journaled');
    });
    if (planned.changes.length > 0) deps.onCommitted?.(planned.next, planned.changes, planned.traces);
    // A snapshot writes every open transaction: taken after max(N, open transactions) events, its cost
    // per event stays bounded however many are open.
    const snapshotAfter = Math.max(deps.snapshot_every_events, planned.next.open.size);
    if (!this.inFlightSnapshot && planned.next.seq - this.snapshotSeq >= snapshotAfter) void this.snapshot();
    return planned.replies;
  }

  /**
   * Commits each command alone, from the actor's state. A write that failed may or may not have
   * committed, so the journal is read again before the next command; the sequence numbers make a
   * commit that did happen refuse any second try of it.
   */
  private async executeOneByOne(requests: CommandRequest[]): Promise<ActorReply[]> {
    const replies: ActorReply[] = [];
    let stop: Refusal | undefined;
    for (const request of requests) {
      if (!stop && !this.state) this.state = await this.recoverOrNothing();
      const base = stop ? undefined : this.state;
      if (!base) {
        stop ??= 'failed';
        replies.push({ kind: 'refused', reason: stop });
        continue;
      }
      const [reply] = await this.execute(base, [request]);
      replies.push(reply!);
      if (reply!.kind !== 'refused' || reply!.reason === 'idempotency_conflict') continue;
      // After a failed or uncertain write, the next command starts from the journal.
      if (reply!.reason === 'failed' || reply!.reason === 'uncertain') this.state = undefined;
      // The shard is another instance's now: nothing more can be committed here.
      else stop = reply!.reason;
    }
    return replies;
  }

  private async recoverOrNothing(): Promise<AccountState | undefined> {
    try {
      return await this.recover();
    } catch (error) {
      this.log('warn', { err: error }, 'could not recover after a failed write');
      return undefined;
    }
  }

  /** Saves the current state as a snapshot; one at a time, so a fast account does not write one per commit. */
  private async snapshot(): Promise<void> {
    if (this.inFlightSnapshot) await this.inFlightSnapshot;
    const taken = this.state;
    if (!taken || taken.seq === this.snapshotSeq) return;
    this.inFlightSnapshot = this.deps.snapshots
      .save(this.user_id, taken.seq, stateToStored(taken))
      .then(
        () => void (this.snapshotSeq = Math.max(this.snapshotSeq, taken.seq)),
        (error: unknown) =>
          this.log('warn', { err: error, seq: taken.seq }, 'snapshot failed; the journal still has everything'),
      )
      .finally(() => (this.inFlightSnapshot = undefined));
    await this.inFlightSnapshot;
  }
}

/** The behaviour of `user_id`'s account actor. */
export function accountBehaviour(user_id: string, deps: AccountDeps): AccountBehaviour {
  return new AccountBehaviour(user_id, deps);
}

function refusedFailed(): ActorReply {
  return { kind: 'refused', reason: 'failed' };
}

function journalEvent(event: Event): JournalEvent {
  const created = event.type === 'transaction_created';
  return {
    type: event.type,
    transaction_id: created ? event.transaction.id : event.transaction_id,
    payload: toStored(event),
    request_id: created ? event.transaction.request_id : event.request_id,
    at: created ? event.transaction.created_at : event.at,
  };
}
