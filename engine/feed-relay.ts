import type { Logger } from '../logger.ts';
import type { FeedChannel } from '../persistence/feed-channel.ts';
import type { Transaction } from './account.ts';
import { toStored, transactionFromStored } from './account-codec.ts';
import type { TransactionFeed } from './transaction-feed.ts';

export interface FeedRelayOptions {
  /** The channel between the instances (persistence/feed-channel.ts). */
  channel: FeedChannel;
  instance: string;
  /** Changes are gathered this long and sent as one message. */
  flush_ms: number;
  /** The most changes one message carries; more are sent at once. */
  batch_max: number;
  log: Logger;
}

/**
 * The live feed across instances: an account commits on the instance that owns its shard, while its
 * viewer may be streaming from any instance. Each instance publishes its committed changes on the feed
 * channel (Redis: persistence/feed-channel.ts), gathered for `flush_ms`, and hands the others' to its
 * own feed. Best effort, as the feed is: with Redis down, a stream sees only this instance's commits,
 * and a page reload reads the truth.
 */
export function relayFeed(feed: TransactionFeed, options: FeedRelayOptions) {
  let pending: Transaction[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function flush(): void {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const batch = { from: options.instance, transactions: toStored(pending) as unknown[] };
    pending = [];
    options.channel.publish(batch).catch((error: unknown) => {
      options.log.warn({ err: error }, 'could not relay feed changes to the other instances');
    });
  }

  options.channel.onMessage(
    (batch) => {
      if (closed) return;
      try {
        if (batch.from === options.instance) return;
        feed.receive(batch.transactions.map(transactionFromStored));
      } catch (error) {
        options.log.warn({ err: error }, 'a relayed feed message was unreadable');
      }
    },
    (error, during) => {
      if (during === 'subscribe') options.log.warn({ err: error }, 'could not subscribe to the feed channel');
      else if (!closed) options.log.warn({ err: error }, 'a relayed feed message was unreadable');
    },
  );

  return {
    /** Queues committed changes for the other instances. */
    share(transactions: Transaction[]): void {
      if (closed) return;
      pending.push(...transactions);
      if (pending.length >= options.batch_max) flush();
      else timer ??= setTimeout(flush, options.flush_ms);
    },
    close(): void {
      flush();
      closed = true;
    },
  };
}
