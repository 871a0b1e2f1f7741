import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from '@opentelemetry/api';
import { Webhook } from 'standardwebhooks';
import { createHop, HOP_DEFAULTS } from '../hop.ts';
import type { Logger } from '../logger.ts';
import { ATTRIBUTES as A, endSpan, injectContext, SpanKind, startSpan, withSpan } from '../tracing.ts';
import type { BankCallback, CallbackSink } from './bank.ts';

/** The callback hop's own bounds (`timeout_ms` bounds each attempt, headers and body). */
export const CALLBACK_HOP = {
  /** Keep-alive connections to the gateway at most; further attempts queue, within their timeout. */
  sockets_max: 64,
  /** A new connection to the gateway must be up within this long (at most `timeout_ms`). */
  connect_timeout_ms: HOP_DEFAULTS.connect_timeout_ms,
  /** An idle connection is closed after this long: before the gateway's 5 s keepAliveTimeout. */
  idle_ms: HOP_DEFAULTS.idle_ms,
} as const;

export type DeliveryOutcome = 'delivered' | 'undelivered' | 'dropped' | 'stopped';

export interface CallbackSender extends CallbackSink {
  /**
   * Sends `copies` copies of one delivery (one webhook-id), each retried until it is answered 2xx; with
   * `trace` (tracing on), under a client span of that context, whose `traceparent` every attempt carries.
   */
  deliver(callback: BankCallback, copies: number, trace?: Context): Promise<DeliveryOutcome>;
  /** Aborts requests in flight and pending retries, waits until every delivery has ended, and closes the connections. */
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
  // Each pending retry's backoff listens for the stop: as many as deliveries in flight, a bounded number.
  setMaxListeners(deliveries_max + 1, stopping.signal);
  const in_flight = new Set<Promise<DeliveryOutcome>>();
  // Every attempt goes out on one pool of keep-alive connections. One whose connection was reset (a
  // reused socket the gateway had just closed included) is a failed attempt like any other: retried.
  const hop = createHop({
    sockets_max: CALLBACK_HOP.sockets_max,
    timeout_ms,
    connect_timeout_ms: CALLBACK_HOP.connect_timeout_ms,
    idle_ms: CALLBACK_HOP.idle_ms,
  });
  const target = new URL(options.url);
  const origin = target.origin;
  const path = target.pathname + target.search;

  const post = async (id: string, body: string): Promise<boolean> => {
    const timestamp_s = Math.floor(Date.now() / 1000);
    const response = await hop.request(origin, path, {
      method: 'POST',
      headers: injectContext({
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(timestamp_s),
        'webhook-signature': webhook.sign(id, new Date(timestamp_s * 1000), body),
      }),
      body,
    });
    return response.status >= 200 && response.status < 300;
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

  /** A delivery under a client span continuing the transfer's trace (tracing on and a context given). */
  const sendTraced = async (callback: BankCallback, copies: number, trace?: Context): Promise<DeliveryOutcome> => {
    const span =
      trace &&
      startSpan(
        `POST ${target.pathname}`,
        {
          kind: SpanKind.CLIENT,
          attributes: { [A.method]: 'POST', [A.transaction_id]: callback.data.reference },
        },
        trace,
      );
    if (!span) return send(callback, copies);
    const outcome = await withSpan(span, () => send(callback, copies), trace);
    endSpan(span, outcome !== 'delivered', { [A.outcome]: outcome });
    return outcome;
  };

  return {
    deliver(callback, copies, trace) {
      if (stopping.signal.aborted) return Promise.resolve('stopped');
      if (in_flight.size >= deliveries_max) {
        log.warn({ deliveries_max, reference: callback.data.reference }, 'callback dropped: too many in flight');
        return Promise.resolve('dropped');
      }
      const delivery = sendTraced(callback, copies, trace);
      in_flight.add(delivery);
      void delivery.finally(() => in_flight.delete(delivery));
      return delivery;
    },
    async stop() {
      stopping.abort();
      // Ends the requests in flight: their deliveries see the stop and end `stopped`.
      hop.close();
      await Promise.allSettled(in_flight);
    },
  };
}
