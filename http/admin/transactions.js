// Transactions across users (filtered, keyset pages), and one transaction: every field, the failure
// reason, and its audit trail in order.

import { parseAmount } from '/viewer/money.js';
import { $, cell, el, fillTable, fullId, link, money, statusBadge, when } from './dom.js';
import { pager, withQuery } from './route.js';

const PAGE_LIMIT = 20;
const TYPES = ['deposit', 'withdrawal'];
const PATHS = { deposit: '/api/v1/deposits', withdrawal: '/api/v1/withdrawals' };
/** The filter form's fields, kept in the hash as typed (amounts in the currency's units, dates as days). */
const FILTERS = ['user_id', 'type', 'status', 'currency', 'from', 'to', 'min', 'max', 'limit'];

/** The context of the view on screen (admin.js makes one per view). */
let ctx;

const transactionHash = (t) => `#/transactions/${encodeURIComponent(t.id)}?type=${t.type}`;

/** A transaction as a row of a list: a link to its detail, the amount in its currency's digits. */
export function transactionRow(t, { withUser }) {
  return el(
    'tr',
    { dataset: { id: t.id, status: t.status } },
    cell(when(t.created_at)),
    cell(t.type),
    cell(money(t.amount, t.currency), 'number'),
    cell(t.currency),
    cell(statusBadge(t.status)),
    ...(withUser ? [cell(link(`#/users/${encodeURIComponent(t.user_id)}`, fullId(t.user_id)))] : []),
    cell(link(transactionHash(t), fullId(t.id))),
  );
}

// ---- the list ----

/**
 * The API's query for the filters in the hash, or {error} in words: an amount needs a currency (its
 * minor digits), and a day becomes the instants of its start and end in this browser's zone.
 */
function apiQuery(query) {
  const api = new URLSearchParams({ limit: query.get('limit') || String(PAGE_LIMIT) });
  for (const name of ['user_id', 'type', 'status', 'cursor']) if (query.get(name)) api.set(name, query.get(name));
  const currency = (query.get('currency') ?? '').toUpperCase();
  if (currency) api.set('currency', currency);
  if (query.get('from')) api.set('created_from', new Date(`${query.get('from')}T00:00:00`).toISOString());
  if (query.get('to')) api.set('created_to', new Date(`${query.get('to')}T23:59:59.999`).toISOString());
  for (const [name, apiName] of [
    ['min', 'min_amount'],
    ['max', 'max_amount'],
  ]) {
    const text = query.get(name);
    if (!text) continue;
    if (!currency) return { error: 'Choose a currency to filter by amount: amounts are in its units.' };
    const amount = parseAmount(text, currency);
    if (amount.error) return { error: `${name === 'min' ? 'Amount at least' : 'Amount at most'}: ${amount.error}` };
    api.set(apiName, String(amount.minor));
  }
  return { query: api };
}

/** `#/transactions?user_id=…&status=…&cursor=…`: a page of every user's transactions, filtered. */
export async function showTransactions(route, context) {
  ctx = context;
  const form = $('transaction-filters');
  for (const name of FILTERS) form.elements[name].value = route.query.get(name) ?? '';
  if (!form.elements.limit.value) form.elements.limit.value = String(PAGE_LIMIT);
  for (const id of ['transaction-filter-error', 'transaction-error']) $(id).textContent = '';
  const { query, error } = apiQuery(route.query);
  if (error) {
    $('transaction-filter-error').textContent = error;
    fillTable('transaction-table', []);
    return;
  }
  const page = await ctx.read(`/api/v1/transactions?${query}`, 'transaction-error');
  if (!page) return;
  fillTable(
    'transaction-table',
    page.data.map((t) => transactionRow(t, { withUser: true })),
    'transaction-empty',
  );
  pager({ nav: $('transaction-pager'), route, page, go: ctx.go });
}

// ---- one transaction ----

/** A field's value as people read it; the raw value stays in the title where it is reformatted. */
function fieldValue(name, value, t) {
  if (value === null || value === undefined) return '—';
  if (name === 'id') return fullId(value);
  if (name === 'user_id') return link(`#/users/${encodeURIComponent(value)}`, fullId(value));
  if (name === 'amount') return `${money(value, t.currency)} ${t.currency} (${value} minor units)`;
  if (name === 'status') return statusBadge(value);
  if (name === 'failure') return `${value.message} (${value.code})`;
  if (name.endsWith('_at')) return el('time', { datetime: value, title: value, text: when(value) });
  if (typeof value === 'object') return el('pre', { text: JSON.stringify(value, null, 2) });
  return String(value);
}

/** What an audit-trail event adds beyond its type and cause: the bank's reference, attempts, an error. */
function eventDetails(event) {
  const parts = [];
  if (event.bank_reference !== undefined) parts.push(`bank reference ${event.bank_reference}`);
  if (event.attempts !== undefined) parts.push(`attempt ${event.attempts}`);
  if (event.failure) parts.push(`${event.failure.message} (${event.failure.code})`);
  if (event.error) parts.push(typeof event.error === 'string' ? event.error : JSON.stringify(event.error));
  return parts.join('; ');
}

/** The transaction with `id`, asking as the type the hash suggests first; undefined (said why) when neither has it. */
async function findTransaction(id, typeHint) {
  const order = TYPES.includes(typeHint) ? [typeHint, ...TYPES.filter((type) => type !== typeHint)] : TYPES;
  for (const type of order) {
    const answer = await ctx.request('GET', `${PATHS[type]}/${encodeURIComponent(id)}`, {
      errorId: 'transaction-detail-error',
    });
    if (!answer) return undefined;
    if (answer.ok) return answer.json;
    if (answer.status !== 404 || type === order.at(-1)) {
      $('transaction-detail-error').textContent =
        answer.status === 404 ? `No deposit or withdrawal has the id ${id}.` : ctx.explain(answer);
      return undefined;
    }
  }
  return undefined;
}

/** `#/transactions/{id}?type=…`: every field, the failure reason, and the audit trail in order. */
export async function showTransaction(route, context) {
  ctx = context;
  $('transaction-detail-error').textContent = '';
  $('transaction-title').textContent = 'Transaction';
  $('transaction-failure').hidden = true;
  $('transaction-fields').replaceChildren();
  fillTable('audit-trail', []);
  const t = await findTransaction(route.id, route.query.get('type'));
  if (!t) return;
  const kind = t.type === 'deposit' ? 'Deposit' : 'Withdrawal';
  $('transaction-title').replaceChildren(
    `${kind} of ${money(t.amount, t.currency)} ${t.currency} `,
    statusBadge(t.status),
  );
  if (t.failure) {
    $('transaction-failure').replaceChildren(
      el('strong', { text: 'Failed: ' }),
      `${t.failure.message} (code ${t.failure.code})`,
    );
    $('transaction-failure').hidden = false;
  }
  const fields = Object.entries(t).filter(([name]) => name !== 'events');
  $('transaction-fields').replaceChildren(
    ...fields.flatMap(([name, value]) => [
      el('dt', { text: name }),
      el('dd', { dataset: { field: name } }, fieldValue(name, value, t)),
    ]),
  );
  const events = [...t.events].sort((a, b) => a.seq - b.seq);
  fillTable(
    'audit-trail',
    events.map((event) =>
      el(
        'tr',
        { dataset: { type: event.type } },
        cell(String(event.seq), 'number'),
        cell(el('time', { datetime: event.at, title: event.at, text: when(event.at) })),
        cell(event.type),
        cell(event.status ? statusBadge(event.status) : '—'),
        cell(event.cause),
        cell(eventDetails(event), 'wrap'),
        cell(event.request_id ? fullId(event.request_id) : '—'),
      ),
    ),
  );
}

// ---- wiring ----

$('transaction-filters').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const values = Object.fromEntries(FILTERS.map((name) => [name, form.elements[name].value.trim()]));
  if (values.limit === String(PAGE_LIMIT)) values.limit = '';
  ctx.go({ section: 'transactions', query: withQuery(new URLSearchParams(), values) });
});
$('transaction-filters').addEventListener('reset', (event) => {
  event.preventDefault();
  ctx.go({ section: 'transactions', query: new URLSearchParams() });
});
