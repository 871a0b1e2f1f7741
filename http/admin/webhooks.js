// Merchant webhooks: the endpoints across users (keyset pages), one endpoint with its deliveries (and
// Enable when it was disabled), the delivery log (filtered, keyset pages), and one delivery with every
// attempt, its event and a Redeliver that sends a fresh Idempotency-Key and shows the gateway's answer.

import { newIdempotencyKey } from '/viewer/api.js';
import { $, cell, el, fillTable, fullId, link, money, say, statusBadge, when } from './dom.js';
import { pager, withQuery } from './route.js';

const PAGE_LIMIT = 20;
/** The delivery log's filters, kept in the hash as chosen. */
const DELIVERY_FILTERS = ['endpoint_id', 'event_type', 'status'];
/** How often a pending delivery on screen is read again, to show its attempts as they happen. */
const WATCH_MS = 1000;
const TRANSACTION_PATHS = { deposit: '/api/v1/deposits', withdrawal: '/api/v1/withdrawals' };

/** The context of the view on screen (admin.js makes one per view). */
let ctx;

const endpointPath = (id, rest = '') => `/api/v1/webhook-endpoints/${encodeURIComponent(id)}${rest}`;
export const endpointHash = (id) => `#/webhooks/${encodeURIComponent(id)}`;
const userLink = (id) => link(`#/users/${encodeURIComponent(id)}`, fullId(id));

/**
 * A delivery's detail route: the endpoint it went to and the cursor of the list page it was on, so that
 * the detail (the API has no read of one delivery) finds it in one request of that page.
 */
const deliveryHash = (delivery, pageCursor) =>
  `#/webhook-deliveries/${encodeURIComponent(delivery.id)}?${withQuery(new URLSearchParams(), {
    endpoint_id: delivery.endpoint_id,
    page: pageCursor,
  })}`;

/** An endpoint's state in words: enabled, or disabled with the gateway's reason. */
function endpointState(endpoint) {
  if (endpoint.enabled) return el('span', { class: 'status', dataset: { status: 'enabled' }, text: 'enabled' });
  return el(
    'span',
    {},
    el('span', { class: 'status', dataset: { status: 'disabled' }, text: 'disabled' }),
    endpoint.disabled_reason ? el('span', { class: 'hint', text: ` ${endpoint.disabled_reason}` }) : '',
  );
}

/** An endpoint as a row, with or without its owner (a user's page leaves the owner out). */
export function endpointRow(endpoint, { withUser }) {
  return el(
    'tr',
    { dataset: { id: endpoint.id, state: endpoint.enabled ? 'enabled' : 'disabled' } },
    ...(withUser ? [cell(userLink(endpoint.user_id))] : []),
    cell(endpoint.url, 'wrap'),
    cell(endpoint.event_types.join(', '), 'wrap'),
    cell(endpointState(endpoint), 'wrap state'),
    cell(when(endpoint.created_at)),
    cell(link(endpointHash(endpoint.id), fullId(endpoint.id))),
  );
}

/** An attempt's answer in words: the HTTP status, or why none came. */
const attemptAnswer = (attempt) =>
  attempt.status_code === null ? (attempt.error ?? 'no answer') : `HTTP ${attempt.status_code}`;

/** A delivery as a row of a list; its link carries the page it is on (`pageCursor`). */
function deliveryRow(delivery, pageCursor) {
  const last = delivery.attempts.at(-1);
  const type = delivery.event_type.split('.')[0];
  return el(
    'tr',
    { dataset: { id: delivery.id, status: delivery.status } },
    cell(when(delivery.created_at)),
    cell(delivery.event_type),
    cell(statusBadge(delivery.status)),
    cell(String(delivery.attempts.length), 'number'),
    cell(last ? `${attemptAnswer(last)} · ${when(last.at)}` : '—', 'wrap'),
    cell(
      link(
        `#/transactions/${encodeURIComponent(delivery.transaction_id)}?type=${type}`,
        fullId(delivery.transaction_id),
      ),
    ),
    cell(link(deliveryHash(delivery, pageCursor), fullId(delivery.id))),
  );
}

// ---- endpoints ----

/** `#/webhooks?user_id=…&cursor=…`: a page of every user's endpoints (or one user's), newest first. */
export async function showEndpoints(route, context) {
  ctx = context;
  $('endpoint-filters').elements.user_id.value = route.query.get('user_id') ?? '';
  const query = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  for (const name of ['user_id', 'cursor']) if (route.query.get(name)) query.set(name, route.query.get(name));
  fillTable('endpoint-table', []);
  const page = await ctx.read(`/api/v1/webhook-endpoints?${query}`, 'endpoint-error');
  if (!page) return;
  fillTable(
    'endpoint-table',
    page.data.map((endpoint) => endpointRow(endpoint, { withUser: true })),
    'endpoint-empty',
  );
  pager({ nav: $('endpoint-pager'), route, page, go: ctx.go });
}

/** `#/webhooks/{id}?cursor=…`: the endpoint's fields, Enable when disabled, and a page of its deliveries. */
export async function showEndpoint(route, context) {
  ctx = context;
  say('enable-result', '');
  $('endpoint-title').textContent = 'Webhook endpoint';
  $('endpoint-fields').replaceChildren();
  $('endpoint-disabled').hidden = true;
  $('endpoint-enable').hidden = true;
  fillTable('endpoint-deliveries', []);
  $('endpoint-all-deliveries').href = `#/webhook-deliveries?endpoint_id=${encodeURIComponent(route.id)}`;
  await Promise.all([loadEndpoint(route.id), loadEndpointDeliveries(route)]);
}

async function loadEndpoint(id) {
  const endpoint = await ctx.read(endpointPath(id), 'endpoint-detail-error');
  if (!endpoint) return;
  $('endpoint-title').replaceChildren(`Endpoint ${endpoint.url} `, endpointState(endpoint));
  const fields = [
    ['Id', fullId(endpoint.id)],
    ['User', userLink(endpoint.user_id)],
    ['URL', endpoint.url],
    ['Description', endpoint.description ?? '—'],
    ['Event types', endpoint.event_types.join(', ')],
    ['Status', endpointState(endpoint)],
    ['Created', when(endpoint.created_at)],
    ['Updated', when(endpoint.updated_at)],
  ];
  $('endpoint-fields').replaceChildren(
    ...fields.flatMap(([name, value]) => [el('dt', { text: name }), el('dd', {}, value)]),
  );
  $('endpoint-disabled').replaceChildren(
    el('strong', { text: 'Disabled: ' }),
    endpoint.disabled_reason ?? 'no reason given',
    '. Its deliveries wait until it is enabled.',
  );
  $('endpoint-disabled').hidden = endpoint.enabled;
  const enable = $('endpoint-enable');
  enable.hidden = endpoint.enabled;
  enable.disabled = false;
  enable.onclick = () => void enableEndpoint(endpoint);
}

async function loadEndpointDeliveries(route) {
  const query = new URLSearchParams({ endpoint_id: route.id, limit: String(PAGE_LIMIT) });
  const cursor = route.query.get('cursor');
  if (cursor) query.set('cursor', cursor);
  const page = await ctx.read(`/api/v1/webhook-deliveries?${query}`, 'endpoint-deliveries-error');
  if (!page) return;
  fillTable(
    'endpoint-deliveries',
    page.data.map((delivery) => deliveryRow(delivery, cursor)),
    'endpoint-deliveries-empty',
  );
  pager({ nav: $('endpoint-deliveries-pager'), route, page, go: ctx.go });
}

/** Enables a disabled endpoint (its waiting deliveries go out), says the answer, and reads it again. */
async function enableEndpoint(endpoint) {
  const button = $('endpoint-enable');
  button.disabled = true;
  say('enable-result', '');
  const idempotencyKey = newIdempotencyKey();
  const answer = await ctx.request('POST', endpointPath(endpoint.id, '/enable'), {
    idempotencyKey,
    errorId: 'endpoint-detail-error',
  });
  if (!answer) {
    button.disabled = false;
    return;
  }
  $('enable-result').dataset.status = String(answer.status);
  if (answer.ok) {
    say(
      'enable-result',
      `${answer.status}: enabled; its waiting deliveries go out (Idempotency-Key ${idempotencyKey}).`,
    );
  } else {
    say('enable-result', `${answer.status}, not enabled: ${ctx.explain(answer)}`);
  }
  await loadEndpoint(endpoint.id);
}

// ---- the delivery log ----

/** `#/webhook-deliveries?endpoint_id=…&event_type=…&status=…&cursor=…`: a page of the log, filtered. */
export async function showDeliveries(route, context) {
  ctx = context;
  const form = $('delivery-filters');
  for (const name of DELIVERY_FILTERS) form.elements[name].value = route.query.get(name) ?? '';
  fillTable('delivery-table', []);
  const query = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  for (const name of [...DELIVERY_FILTERS, 'cursor']) if (route.query.get(name)) query.set(name, route.query.get(name));
  const page = await ctx.read(`/api/v1/webhook-deliveries?${query}`, 'delivery-error');
  if (!page) return;
  const cursor = route.query.get('cursor');
  fillTable(
    'delivery-table',
    page.data.map((delivery) => deliveryRow(delivery, cursor)),
    'delivery-empty',
  );
  pager({ nav: $('delivery-pager'), route, page, go: ctx.go });
}

// ---- one delivery ----

/** The delivery with `id`, with the event it sends; undefined (said why) when it cannot be read. */
function findDelivery(id) {
  // This view's read, even when another view is shown meanwhile (its reads are then aborted).
  return ctx.read(`/api/v1/webhook-deliveries/${encodeURIComponent(id)}`, 'delivery-detail-error');
}

/** `#/webhook-deliveries/{id}?endpoint_id=…&page=…`: the delivery, its attempts, its event; Redeliver. */
export async function showDelivery(route, context) {
  ctx = context;
  say('redeliver-result', '');
  for (const id of ['delivery-detail-error', 'delivery-transaction-error', 'delivery-event-note']) {
    $(id).textContent = '';
  }
  $('delivery-title').textContent = 'Webhook delivery';
  $('delivery-fields').replaceChildren();
  $('delivery-event').textContent = '';
  $('redeliver').hidden = true;
  fillTable('attempt-table', []);
  const endpointId = route.query.get('endpoint_id');
  $('delivery-crumb').href = endpointId ? endpointHash(endpointId) : '#/webhook-deliveries';
  $('delivery-crumb').textContent = endpointId ? 'Webhook endpoint' : 'Webhook deliveries';
  const delivery = await findDelivery(route.id);
  if (!delivery) return;
  renderDelivery(delivery);
  const redeliver = $('redeliver');
  redeliver.hidden = false;
  redeliver.disabled = false;
  redeliver.onclick = () => void redeliverShown(route, delivery);
  await Promise.all([showTransactionOf(delivery), watch(route, delivery)]);
}

/** The delivery's fields and attempts, as read last. */
function renderDelivery(delivery) {
  $('delivery-title').replaceChildren(`Delivery of ${delivery.event_type} `, statusBadge(delivery.status));
  const type = delivery.event_type.split('.')[0];
  const fields = [
    ['Id', fullId(delivery.id)],
    ['Status', statusBadge(delivery.status)],
    ['Endpoint', link(endpointHash(delivery.endpoint_id), fullId(delivery.endpoint_id))],
    ['User', userLink(delivery.user_id)],
    ['Event id (webhook-id)', fullId(delivery.event_id)],
    ['Event type', delivery.event_type],
    [
      'Transaction',
      link(
        `#/transactions/${encodeURIComponent(delivery.transaction_id)}?type=${type}`,
        fullId(delivery.transaction_id),
      ),
    ],
    ['Created', when(delivery.created_at)],
    ['Next attempt', when(delivery.next_attempt_at)],
    ['Completed', when(delivery.completed_at)],
  ];
  $('delivery-fields').replaceChildren(
    ...fields.flatMap(([name, value]) => [el('dt', { text: name }), el('dd', { dataset: { field: name } }, value)]),
  );
  fillTable(
    'attempt-table',
    delivery.attempts.map((attempt, index) =>
      el(
        'tr',
        { dataset: { status: attempt.status_code === null ? 'error' : String(attempt.status_code) } },
        cell(String(index + 1), 'number'),
        cell(el('time', { datetime: attempt.at, title: attempt.at, text: when(attempt.at) })),
        cell(attemptAnswer(attempt), 'wrap answer'),
        cell(`${attempt.latency_ms} ms`, 'number'),
      ),
    ),
    'attempt-empty',
  );
  // The body the receiver gets on every attempt, `data` (the transaction at this change) included.
  $('delivery-event').textContent = JSON.stringify(delivery.event, null, 2);
}

/** The event's transaction as it is now, its amount in the currency's digits, beside `data` as it was then. */
async function showTransactionOf(delivery) {
  const type = delivery.event_type.split('.')[0];
  const path = `${TRANSACTION_PATHS[type]}/${encodeURIComponent(delivery.transaction_id)}`;
  const t = await ctx.read(path, 'delivery-transaction-error');
  if (!t) return;
  $('delivery-event-note').replaceChildren(
    'The body’s data is the transaction as it was at this change. Now: ',
    link(
      `#/transactions/${encodeURIComponent(t.id)}?type=${t.type}`,
      `${t.type} of ${money(t.amount, t.currency)} ${t.currency}, ${t.status}`,
    ),
    '.',
  );
}

/** Waits `ms`, or less when the view is left. */
function pause(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/** Which watch is current: a redelivery's watch replaces the one the view started. */
let watching = 0;

/** Reads a pending delivery again every WATCH_MS while it is on screen, so its attempts show as they come. */
async function watch(route, delivery) {
  const { signal } = ctx;
  const mine = ++watching;
  let shown = delivery;
  while (shown.status === 'pending') {
    await pause(WATCH_MS, signal);
    if (signal.aborted || mine !== watching) return;
    const again = await findDelivery(route.id);
    if (!again || signal.aborted || mine !== watching) return;
    shown = again;
    renderDelivery(shown);
  }
}

/** Sends the delivery again with a fresh Idempotency-Key, says the answer, and follows the new round. */
async function redeliverShown(route, delivery) {
  const button = $('redeliver');
  button.disabled = true;
  say('redeliver-result', '');
  const idempotencyKey = newIdempotencyKey();
  const answer = await ctx.request('POST', `/api/v1/webhook-deliveries/${encodeURIComponent(delivery.id)}/redeliver`, {
    idempotencyKey,
    errorId: 'delivery-detail-error',
  });
  button.disabled = false;
  if (!answer) return;
  $('redeliver-result').dataset.status = String(answer.status);
  if (answer.status !== 202) {
    say('redeliver-result', `${answer.status}, not redelivered: ${ctx.explain(answer)}`);
    return;
  }
  say(
    'redeliver-result',
    `202 Accepted: a new round of attempts starts now, with webhook-id ${delivery.event_id} (Idempotency-Key ${idempotencyKey}).`,
  );
  renderDelivery(answer.json);
  await watch(route, answer.json);
}

// ---- wiring ----

$('endpoint-filters').addEventListener('submit', (event) => {
  event.preventDefault();
  const user_id = event.currentTarget.elements.user_id.value.trim();
  ctx.go({ section: 'webhooks', query: withQuery(new URLSearchParams(), { user_id }) });
});
$('endpoint-filters').addEventListener('reset', (event) => {
  event.preventDefault();
  ctx.go({ section: 'webhooks', query: new URLSearchParams() });
});
$('delivery-filters').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const values = Object.fromEntries(DELIVERY_FILTERS.map((name) => [name, form.elements[name].value.trim()]));
  ctx.go({ section: 'webhook-deliveries', query: withQuery(new URLSearchParams(), values) });
});
$('delivery-filters').addEventListener('reset', (event) => {
  event.preventDefault();
  ctx.go({ section: 'webhook-deliveries', query: new URLSearchParams() });
});
