import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';
import type { Logger } from '../logger.ts';
import type { BankCallback, CallbackSink } from './bank.ts';

export type DeliveryOutcome = 'delivered' | 'undelivered' | 'dropped' | 'stopped';

export interface CallbackSender extends CallbackSink {
  /** Sends `copies` copies of one delivery (one webhook-id), each retried until it is answered 2xx. */
  deliver(callback: BankCallback, copies: number): Promise<DeliveryOutcome>;
  /** Aborts requests in flight and pending retries, and waits until every delivery has ended. */
  stop(): Promise<void>;
}

/**
 * Posts the bank's callbacks to the gateway, signed per Standard Webhooks with one secret. A copy not
 * answered 2xx (or not answered within `timeout_ms`) is retried with exponential backoff and full jitter,
 * at most `attempts_max` times; every attempt is signed afresh so that its timestamp is current.
 */
export function createCallbackSender(options: {
  url: string;
  secret: string;
  log: Logger;
  attempts_max?: number;
  backoff_ms_base?: number;
  backoff_ms_max?: number;
  timeout_ms?: number;
  deliveries_max?: number;
}): CallbackSender {
  const log = options.log.child({ module: 'bank-callbacks' });
  const attempts_max = options.attempts_max ?? 8;
  const backoff_ms_base = options.backoff_ms_base ?? 500;
  const backoff_ms_max = options.backoff_ms_max ?? 60_000;
  const timeout_ms = options.timeout_ms ?? 5_000;
  const deliveries_max = options.deliveries_max ?? 10_000;
  const webhook = new Webhook(options.secret);
  const stopping = new AbortController();
  const in_flight = new Set<Promise<DeliveryOutcome>>();

  const post = async (id: string, body: string): Promise<boolean> => {
    const timestamp_s = Math.floor(Date.now() / 1000);
    const response = await fetch(options.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(timestamp_s),
        'webhook-signature': webhook.sign(id, new Date(timestamp_s * 1000), body),
      },
      body,
      signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(timeout_ms)]),
    });
    // The body is never read; cancelling it frees the connection for the next request.
    await response.body?.cancel();
    return response.ok;
  };

  const sendOneCopy = async (id: string, body: string): Promise<DeliveryOutcome> => {
    for (let attempt = 1; attempt <= attempts_max; attempt++) {
      if (stopping.signal.aborted) return 'stopped';
      try {
        if (await post(id, body)) return 'delivered';
        log.debug({ webhook_id: id, attempt }, 'callback refused by the receiver');
      } catch (error) {
        log.debug({ webhook_id: id, attempt, err: (error as Error).message }, 'callback not delivered');
      }
      if (attempt === attempts_max) break;
      const ceiling_ms = Math.min(backoff_ms_max, backoff_ms_base * 2 ** (attempt - 1));
      try {
        await sleep(Math.random() * ceiling_ms, undefined, { signal: stopping.signal });
      } catch {
        return 'stopped';
      }
    }
    log.warn({ webhook_id: id, attempts_max }, 'callback undelivered after the last attempt');
    return 'undelivered';
  };

  const send = async (callback: BankCallback, copies: number): Promise<DeliveryOutcome> => {
    const id = `msg_${randomUUID()}`;
    const body = JSON.stringify(callback);
    for (let copy = 1; copy <= copies; copy++) {
      const outcome = await sendOneCopy(id, body);
      if (outcome !== 'delivered') return outcome;
    }
    log.debug({ webhook_id: id, reference: callback.data.reference, copies }, 'callback delivered');
    return 'delivered';
  };

  return {
    deliver(callback, copies) {
      if (stopping.signal.aborted) return Promise.resolve('stopped');
      if (in_flight.size >= deliveries_max) {
        log.warn({ deliveries_max, reference: callback.data.reference }, 'callback dropped: too many in flight');
        return Promise.resolve('dropped');
      }
      const delivery = send(callback, copies);
      in_flight.add(delivery);
      void delivery.finally(() => in_flight.delete(delivery));
      return delivery;
    },
    async stop() {
      stopping.abort();
      await Promise.allSettled(in_flight);
    },
  };
}
