import { Redis } from 'ioredis';

/** ioredis with its options explicit: commands fail fast while disconnected instead of queueing. */
export function createRedis(url: string, connectionName: string): Redis {
  return new Redis(url, {
    connectionName,
    connectTimeout: 2000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    lazyConnect: false,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
  });
}

/**
 * Hands `channel`'s messages on a subscriber connection to `onMessage`, subscribing as soon as the
 * connection is ready. One connection carries several channels, so each listener filters its own.
 */
export function listenTo(
  subscriber: Redis,
  channel: string,
  onMessage: (message: string) => void,
  onSubscribeError: (error: unknown) => void,
): void {
  subscriber.on('message', (from: string, message: string) => {
    if (from === channel) onMessage(message);
  });
  const subscribe = () => void subscriber.subscribe(channel).catch(onSubscribeError);
  if (subscriber.status === 'ready') subscribe();
  else subscriber.once('ready', subscribe);
}
