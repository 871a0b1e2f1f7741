import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import type { Transaction } from './account.ts';
import { toStored, transactionFromStored } from './account-codec.ts';
import type { TransactionFeed } from './transaction-feed.ts';

export interface FeedRelayOptions {
  redis: Redis;
  /** A connection in subscriber mode (it may carry other channels too). */
  subscriber: Redis;
  channel: string;
  instance: string;
  /** Changes are gathered this long and sent as one message. */
  flush_ms: number;
  /** The most changes one message carries; more are sent at once. */
  batch_max: number;
  log: Logger;
}

/**
 * The live feed across instances: an account commits on the instance that owns its shard, while its
 * viewer may be streaming from any instance. Each instance publishes its committed changes on a Redis
 * channel (gathered for `flush_ms`) and hands the others' to its own feed. Best effort, as the feed is:
 * with Redis down, a stream sees only this instance's commits, and a page reload reads the truth.
 */
export function relayFeed(feed: TransactionFeed, options: FeedRelayOptions) {
  let pending: Transaction[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function flush(): void {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const message = JSON.stringify({ from: options.instance, transactions: toStored(pending) });
    pending = [];
    options.redis.publish(options.channel, message).catch((error: unknown) => {
      options.log.warn({ err: error }, 'could not relay feed changes to the other instances');
    });
  }

  options.subscriber.on('message', (channel: string, message: string) => {
    if (channel !== options.channel || closed) return;
    try {
      const parsed = JSON.parse(message) as { from: string; transactions: unknown[] };
      if (parsed.from === options.instance) return;
      feed.receive(parsed.transactions.map(transactionFromStored));
    } catch (error) {
      options.log.warn({ err: error }, 'a relayed feed message was unreadable');
    }
  });
  const subscribe = () =>
    void options.subscriber.subscribe(options.channel).catch((error: unknown) => {
      options.log.warn({ err: error }, 'could not subscribe to the feed channel');
    });
  if (options.subscriber.status === 'ready') subscribe();
  else options.subscriber.once('ready', subscribe);

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
