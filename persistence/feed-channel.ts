import type { Redis } from 'ioredis';
import { listenTo } from './redis.ts';

/** One message of the live feed between instances: committed transactions, in their stored form. */
export interface FeedBatch {
  from: string;
  transactions: unknown[];
}

/** The Redis channel the instances relay their committed changes on (engine/feed-relay.ts). */
export interface FeedChannel {
  /** Publishes a batch to every instance subscribed, this one included. */
  publish(batch: FeedBatch): Promise<void>;
  /**
   * Hands every batch published to `handler`. `onError` hears of a message that is not JSON
   * (`read`) and of a subscription Redis refused (`subscribe`).
   */
  onMessage(handler: (batch: FeedBatch) => void, onError: (error: unknown, during: 'read' | 'subscribe') => void): void;
}

/** The feed channel `<prefix>feed`: published on the command connection, received on the subscriber. */
export function createFeedChannel(redis: Redis, subscriber: Redis, prefix: string): FeedChannel {
  const channel = `${prefix}feed`;
  return {
    async publish(batch) {
      await redis.publish(channel, JSON.stringify(batch));
    },
    onMessage(handler, onError) {
      listenTo(
        subscriber,
        channel,
        (message) => {
          let batch: FeedBatch;
          try {
            batch = JSON.parse(message) as FeedBatch;
          } catch (error) {
            onError(error, 'read');
            return;
          }
          handler(batch);
        },
        (error) => onError(error, 'subscribe'),
      );
    },
  };
}
