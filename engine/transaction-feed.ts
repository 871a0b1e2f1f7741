import type { Logger } from '../logger.ts';
import type { Change, Transaction } from './account.ts';

// The live feed of committed transaction changes: the account actors here publish into it after each
// commit, and the other instances' commits arrive through `receive` (engine/feed-relay.ts). Each
// subscriber (one server-sent-events stream) pulls from a buffer of its own. Every part is bounded:
// the subscribers in all, those of one owner, and each buffer. A subscriber that falls `buffer_max`
// changes behind is dropped rather than slowing the actors down; its client reconnects and reads the
// current state again.

export interface TransactionFeedOptions {
  /** Subscribers at once, over all owners. */
  subscribers_max: number;
  /** Subscribers at once for one owner (the caller that opened them). */
  subscribers_per_owner_max: number;
  /** Changes waiting for one subscriber before it is dropped as too slow. */
  buffer_max: number;
  log: Logger;
}

/**
 * Why a subscription ended: the feed closed, it fell too far behind, a change could not be
 * published to it, or its consumer let go.
 */
export type EndReason = 'closed' | 'overflow' | 'failed' | 'unsubscribed';

export type FeedItem = { kind: 'transaction'; transaction: Transaction } | { kind: 'end'; reason: EndReason };

/** One subscriber's end of the feed. */
export interface Subscription {
  /** The next change, waiting for one if none is buffered; after the end, the end again. */
  next(): Promise<FeedItem>;
  /** Ends the subscription (idempotent). */
  close(): void;
}

export type SubscribeResult =
  | { ok: true; subscription: Subscription }
  | { ok: false; reason: 'subscribers_max' | 'owner_subscribers_max' | 'closed' };

interface Subscriber {
  /** The user whose changes it receives; undefined for every user's. */
  user_id: string | undefined;
  owner: string;
  buffer: Transaction[];
  waiting: ((item: FeedItem) => void) | undefined;
  ended: EndReason | undefined;
  /** The last delivery (one commit, or one batch relayed from another instance) it was judged at. */
  judgedAt: number;
}

/** Creates the feed; wire `onCommitted` to the accounts' hook and `close` into shutdown. */
export function createTransactionFeed(options: TransactionFeedOptions) {
  const byUser = new Map<string, Set<Subscriber>>();
  const everyUser = new Set<Subscriber>();
  const perOwner = new Map<string, number>();
  let count = 0;
  let closed = false;
  // Deliveries so far: a subscriber's backlog is judged once per delivery, before its first change.
  let deliveries = 0;
  // Hands every committed change to the other instances too (engine/feed-relay.ts), once wired.
  let share: ((transactions: Transaction[]) => void) | undefined;

  function end(subscriber: Subscriber, reason: EndReason): void {
    if (subscriber.ended) return;
    subscriber.ended = reason;
    subscriber.buffer.length = 0;
    const set = subscriber.user_id === undefined ? everyUser : byUser.get(subscriber.user_id);
    set?.delete(subscriber);
    if (subscriber.user_id !== undefined && set?.size === 0) byUser.delete(subscriber.user_id);
    const owned = (perOwner.get(subscriber.owner) ?? 1) - 1;
    if (owned > 0) perOwner.set(subscriber.owner, owned);
    else perOwner.delete(subscriber.owner);
    count -= 1;
    const waiting = subscriber.waiting;
    subscriber.waiting = undefined;
    waiting?.({ kind: 'end', reason });
  }

  /**
   * A subscriber is too slow when it is `buffer_max` changes behind as a delivery reaches it; a delivery
   * itself is taken whole, since its reader gets no turn between its changes (a relayed batch holds up
   * to 500, an actor's commit up to 256 commands' changes). So a buffer holds at most `buffer_max` plus
   * one delivery.
   */
  function deliver(subscriber: Subscriber, transaction: Transaction): void {
    if (subscriber.ended) return;
    if (subscriber.judgedAt !== deliveries) {
      subscriber.judgedAt = deliveries;
      if (subscriber.buffer.length >= options.buffer_max) {
        end(subscriber, 'overflow');
        return;
      }
    }
    if (subscriber.waiting) {
      const waiting = subscriber.waiting;
      subscriber.waiting = undefined;
      waiting({ kind: 'transaction', transaction });
    } else {
      subscriber.buffer.push(transaction);
    }
  }

  /** Hands one delivery's changes to their subscribers, in order. */
  function publish(transactions: readonly Transaction[]): void {
    deliveries += 1;
    for (const transaction of transactions) {
      for (const subscriber of byUser.get(transaction.user_id) ?? []) deliver(subscriber, transaction);
      for (const subscriber of everyUser) deliver(subscriber, transaction);
    }
  }

  return {
    /** Hands every committed change here to `relay` too (the other instances' feeds). */
    shareWith(relay: (transactions: Transaction[]) => void): void {
      share = relay;
    },

    /** Subscribes `owner` to one user's changes, or to every user's when `user_id` is undefined. */
    subscribe(scope: { user_id: string | undefined; owner: string }): SubscribeResult {
      if (closed) return { ok: false, reason: 'closed' };
      if (count >= options.subscribers_max) return { ok: false, reason: 'subscribers_max' };
      const owned = perOwner.get(scope.owner) ?? 0;
      if (owned >= options.subscribers_per_owner_max) return { ok: false, reason: 'owner_subscribers_max' };
      const subscriber: Subscriber = { ...scope, buffer: [], waiting: undefined, ended: undefined, judgedAt: -1 };
      if (scope.user_id === undefined) everyUser.add(subscriber);
      else byUser.set(scope.user_id, (byUser.get(scope.user_id) ?? new Set()).add(subscriber));
      perOwner.set(scope.owner, owned + 1);
      count += 1;
      const subscription: Subscription = {
        next: () => {
          if (subscriber.waiting) throw new Error('a subscription has one reader: await next() before the next call');
          const buffered = subscriber.buffer.shift();
          if (buffered) return Promise.resolve({ kind: 'transaction', transaction: buffered });
          if (subscriber.ended) return Promise.resolve({ kind: 'end', reason: subscriber.ended });
          return new Promise((resolve) => (subscriber.waiting = resolve));
        },
        close: () => end(subscriber, 'unsubscribed'),
      };
      return { ok: true, subscription };
    },

    /**
     * The accounts' commit hook: publishes each transaction as each committed event left it (computed
     * once, by the actor). Does nothing when nobody listens.
     */
    onCommitted(user_id: string, changes: readonly Change[]): void {
      if (!share && everyUser.size === 0 && !byUser.has(user_id)) return;
      try {
        const transactions = changes.map((change) => change.transaction);
        publish(transactions);
        share?.(transactions);
      } catch (error) {
        // Called inside the actor's turn after its commit: a live view's failure must not fail the
        // commit's replies. Its subscribers missed a change, so they end and read the state again.
        options.log.error({ err: error, user_id }, 'could not publish committed changes');
        for (const subscriber of [...(byUser.get(user_id) ?? []), ...everyUser]) end(subscriber, 'failed');
      }
    },

    /** Changes committed on another instance, for the subscribers here. */
    receive(transactions: readonly Transaction[]): void {
      if (closed) return;
      publish(transactions);
    },

    /** Subscribers now. */
    size: () => count,

    /** Ends every subscription and refuses new ones (shutdown). */
    close(): void {
      closed = true;
      for (const subscriber of [...everyUser, ...[...byUser.values()].flatMap((set) => [...set])]) {
        end(subscriber, 'closed');
      }
    },
  };
}

export type TransactionFeed = ReturnType<typeof createTransactionFeed>;
