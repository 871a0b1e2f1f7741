import { Webhook } from 'standardwebhooks';
import { createHop, HopError } from '../hop.ts';
import type { Logger } from '../logger.ts';
import type { ReadModelRow } from '../persistence/transaction-row.ts';
import type { AttemptRecord, ClaimedDelivery, DeliveryRow, WebhookStore } from '../persistence/webhooks.ts';
import { checkWebhookTarget, guardedLookup, WebhookAddressRefused, type AddressPolicy } from './webhook-address.ts';
import { fullJitterDelayMs } from './payments.ts';

/** How the deliveries go out: the configured schedule, pool and bounds. */
export interface DeliverySettings {
  /** How often an idle worker looks for due deliveries. */
  poll_ms: number;
  /** Deliveries sent at once by this instance. */
  in_flight_max: number;
  /** Keep-alive connections to one endpoint's origin at most. */
  sockets_per_origin: number;
  connect_timeout_ms: number;
  /** One attempt, from its start to the whole answer. */
  timeout_ms: number;
  /** Exponential backoff with full jitter: attempt n waits random(0, min(max, base·2^(n-1))). */
  retry_base_ms: number;
  retry_max_ms: number;
  /** A round of attempts ends, failed, after this many attempts or once its next try would be past this long. */
  attempts_max: number;
  retry_for_ms: number;
  /** An endpoint is disabled after this many failed attempts in a row. */
  disable_after_failures: number;
}

/** How long beyond an attempt's own timeout its claim holds: a killed worker's claims come back after it. */
const CLAIM_MARGIN_MS = 5000;

/** Longest error text kept in an attempt's log entry. */
const ERROR_TEXT_MAX = 300;

export interface MerchantWebhookOptions {
  store: WebhookStore;
  settings: DeliverySettings;
  policy: AddressPolicy;
  /** The transaction as the REST API shows it, from the row the journal wrote. */
  render: (row: ReadModelRow) => unknown;
  log: Logger;
  random?: () => number;
}

export interface MerchantWebhooks {
  /** Stops claiming, waits for the attempts in flight, closes the connections. */
  stop(): Promise<void>;
}

/** The wait before retry `n` (1 for the first retry): full jitter over an exponential bound. */
export function retryDelay(n: number, settings: DeliverySettings, random: () => number = Math.random): number {
  return fullJitterDelayMs(random, n, settings.retry_base_ms, settings.retry_max_ms);
}

/** The event a delivery sends, as its request's body carries it (and the delivery log shows it). */
export function webhookEvent(delivery: Pick<DeliveryRow, 'event_id' | 'event_type' | 'created_at'>, data: unknown) {
  return {
    id: delivery.event_id,
    type: delivery.event_type,
    created_at: new Date(delivery.created_at).toISOString(),
    data,
  };
}

/** The Standard Webhooks request of one delivery: body and headers, signed with every current secret. */
export function signedRequest(delivery: ClaimedDelivery, data: unknown, now: Date) {
  const body = JSON.stringify(webhookEvent(delivery, data));
  const timestamp = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const signature = delivery.secrets
    .map((secret) => new Webhook(secret).sign(delivery.event_id, timestamp, body))
    .join(' ');
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'payment-gateway-webhooks/1',
    'webhook-id': delivery.event_id,
    'webhook-timestamp': String(timestamp.getTime() / 1000),
    'webhook-signature': signature,
  };
  return { body, headers };
}

/**
 * The instance's delivery worker: claims due deliveries (up to `in_flight_max` at once), POSTs each as a
 * Standard Webhooks request through a bounded keep-alive pool whose connections go only to addresses the
 * policy allows, and records each attempt. A 2xx is delivered; anything else is retried on the schedule,
 * then failed; a run of failures disables the endpoint. At least once: a crash between the answer and its
 * record sends the delivery again after its claim ends, with the same webhook-id.
 */
export function startMerchantWebhooks(options: MerchantWebhookOptions): MerchantWebhooks {
  const { store, settings, policy, log } = options;
  const random = options.random ?? Math.random;
  const hop = createHop({
    sockets_max: settings.sockets_per_origin,
    timeout_ms: settings.timeout_ms,
    connect_timeout_ms: settings.connect_timeout_ms,
    lookup: guardedLookup(policy),
    // A merchant's answer counts by its status alone; its body, of any size, is never kept.
    discard_body: true,
  });
  const lease_ms = settings.timeout_ms + CLAIM_MARGIN_MS;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let claiming: Promise<void> | undefined;
  let again = false;

  /** One attempt: what the endpoint answered (or why nothing), and how long it took. */
  async function attempt(delivery: ClaimedDelivery): Promise<{ ok: boolean; record: AttemptRecord }> {
    const started = performance.now();
    const at = new Date();
    const finish = (status_code: number | null, error: string | null) => ({
      ok: status_code !== null && status_code >= 200 && status_code < 300,
      record: { at: at.toISOString(), status_code, error, latency_ms: Math.round(performance.now() - started) },
    });
    try {
      const url = new URL(delivery.url);
      checkWebhookTarget(url, policy);
      const { body, headers } = signedRequest(delivery, options.render(delivery.data), at);
      const response = await hop.request(url.origin, url.pathname + url.search, { method: 'POST', headers, body });
      return finish(response.status, null);
    } catch (error) {
      return finish(null, describe(error));
    }
  }

  async function deliver(delivery: ClaimedDelivery): Promise<void> {
    const { ok, record } = await attempt(delivery);
    const context = { delivery_id: delivery.id, event_id: delivery.event_id, endpoint_id: delivery.endpoint_id };
    if (ok) {
      await store.succeeded(delivery, record);
      log.info({ ...context, latency_ms: record.latency_ms }, 'webhook delivered');
      return;
    }
    const n = delivery.round_attempts + 1;
    const delay = retryDelay(n, settings, random);
    const elapsed = Date.now() + delay - new Date(delivery.round_started_at).getTime();
    const retry_at =
      n < settings.attempts_max && elapsed < settings.retry_for_ms ? new Date(Date.now() + delay) : undefined;
    const { disabled } = await store.failed(delivery, record, retry_at, settings.disable_after_failures);
    log.warn(
      { ...context, status_code: record.status_code, error: record.error, attempt: n, retry_at, disabled },
      retry_at ? 'webhook attempt failed; retrying' : 'webhook delivery failed',
    );
  }

  /** Claims what there is room for and starts each; claims again as soon as any finishes. */
  async function claimRound(): Promise<void> {
    do {
      again = false;
      const room = settings.in_flight_max - inFlight.size;
      if (stopped || room <= 0) return;
      const claimed = await store.claim(room, lease_ms);
      for (const delivery of claimed) {
        const running: Promise<void> = deliver(delivery)
          .catch((error: unknown) => log.error({ err: error, delivery_id: delivery.id }, 'webhook record failed'))
          .finally(() => {
            inFlight.delete(running);
            wake();
          });
        inFlight.add(running);
      }
      if (claimed.length === room) again = true;
    } while (again && !stopped);
  }

  function wake(): void {
    if (stopped) return;
    if (claiming) {
      again = true;
      return;
    }
    claiming = claimRound()
      .catch((error: unknown) => log.warn({ err: error }, 'claiming webhook deliveries failed'))
      .finally(() => {
        claiming = undefined;
        schedule();
      });
  }

  function schedule(): void {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(wake, settings.poll_ms);
  }

  wake();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await claiming;
      await Promise.all(inFlight);
      hop.close();
    },
  };
}

/** An attempt's error as the log shows it: the refusal, the timeout, or the connection's failure. */
function describe(error: unknown): string {
  if (error instanceof WebhookAddressRefused) return `refused: ${error.message}`;
  if (error instanceof HopError) {
    const cause = error.cause instanceof WebhookAddressRefused ? `refused: ${error.cause.message}` : error.message;
    return `${error.failure}: ${cause}`.slice(0, ERROR_TEXT_MAX);
  }
  return String(error).slice(0, ERROR_TEXT_MAX);
}
