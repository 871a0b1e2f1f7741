// The transaction viewer (an ES module of this origin; no build step). It calls this gateway's API
// with the key the person entered, kept in this tab's sessionStorage, and keeps the page current from
// GET /api/v1/events. Every string from the API is placed as text, never as markup.

import { call, isAbort, newIdempotencyKey, problem } from './api.js';
import { followEvents } from './event-stream.js';
import { formatAmount, parseAmount } from './money.js';
import { cell, createTransactionTable } from './transaction-table.js';

const KEY_ITEM = 'gateway.viewer.api_key';
// A burst of changes costs one balance read (the balance has a per-minute limit).
const BALANCE_COALESCE_MS = 300;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const LIVE_TEXT = { off: 'offline', connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…' };

const $ = (id) => document.getElementById(id);

const state = {
  key: null,
  me: null,
  /** Whose account is shown: the caller's own, or the one the admin chose. */
  userId: null,
  /** Aborts the shown account's stream and reads when the account or the key changes. */
  session: null,
  /** Cursors of the pages before the current one, and the current page's (null: the first). */
  cursors: [],
  cursor: null,
  nextCursor: null,
  hasMore: false,
  /** Counts page reads, so that only the latest one's answer is shown. */
  pageRead: 0,
  balanceTimer: null,
  deposit: { key: null, fingerprint: null },
};

const table = createTransactionTable({ tbody: $('rows'), matches });
const api = (method, path, options) => call(state.key, method, path, options);

// ---- signing in and out ----

async function open(key) {
  $('key-error').textContent = '';
  state.key = key;
  let me;
  try {
    me = await api('GET', '/api/v1/me');
  } catch {
    $('key-error').textContent = 'The gateway cannot be reached.';
    return;
  }
  if (!me.ok) {
    state.key = null;
    sessionStorage.removeItem(KEY_ITEM);
    $('key-error').textContent = me.status === 401 ? 'This key is not valid.' : problem(me);
    return;
  }
  sessionStorage.setItem(KEY_ITEM, key);
  state.me = me.json;
  $('signin').hidden = true;
  $('account').hidden = false;
  const admin = state.me.kind === 'admin';
  $('who').textContent = admin ? 'Signed in as the admin' : `Signed in as ${state.me.name} (${state.me.email})`;
  $('admin-form').hidden = !admin;
  if (admin) $('user-id').textContent = 'none chosen';
  else show(state.me.id);
}

function forget() {
  state.session?.abort();
  Object.assign(state, { session: null, key: null, me: null, userId: null });
  sessionStorage.removeItem(KEY_ITEM);
  table.clear();
  $('balances').tBodies[0].replaceChildren();
  $('key').value = '';
  $('account').hidden = true;
  $('signin').hidden = false;
  setLive('off');
}

/** Shows one account: subscribes to its changes, and once subscribed reads its balance and first page. */
function show(userId) {
  state.session?.abort();
  state.session = new AbortController();
  state.userId = userId;
  table.clear();
  $('balances').tBodies[0].replaceChildren();
  $('list-error').textContent = '';
  $('balance-error').textContent = '';
  $('user-id').textContent = userId;
  resetPaging();
  void followEvents({
    key: state.key,
    query: state.me.kind === 'admin' ? `?user_id=${encodeURIComponent(userId)}` : '',
    signal: state.session.signal,
    onState: setLive,
    onOpen: () => {
      void loadBalance();
      void loadPage();
    },
    onTransaction: (transaction) => {
      if (transaction.user_id !== state.userId) return;
      change(transaction);
    },
    onRefused: async (response) => {
      const answer = await response.json().catch(() => ({}));
      if (response.status === 401) {
        forget();
        $('key-error').textContent = 'The key is no longer valid.';
        return;
      }
      setLive('off');
      $('list-error').textContent = answer.message ?? `The event stream answered ${response.status}.`;
    },
  });
}

function setLive(name) {
  $('live').dataset.state = name;
  $('live').textContent = LIVE_TEXT[name];
}

/** A change to one of the account's transactions: into the table, and the balance if it moved money. */
function change(transaction) {
  table.change(transaction);
  showPaging();
  const t = transaction;
  if (t.status === 'succeeded' || t.status === 'failed' || (t.type === 'withdrawal' && t.status === 'pending')) {
    scheduleBalance(BALANCE_COALESCE_MS);
  }
}

// ---- the balance ----

function scheduleBalance(delay_ms) {
  if (state.balanceTimer) return;
  state.balanceTimer = setTimeout(() => {
    state.balanceTimer = null;
    void loadBalance();
  }, delay_ms);
}

async function loadBalance() {
  const signal = state.session.signal;
  let answer;
  try {
    answer = await api('GET', `/api/v1/users/${encodeURIComponent(state.userId)}/balance`, { signal });
  } catch (error) {
    if (!isAbort(error)) $('balance-error').textContent = 'The gateway cannot be reached.';
    return;
  }
  if (signal.aborted) return;
  if (!answer.ok) {
    $('balance-error').textContent = problem(answer);
    if (answer.status === 429) scheduleBalance(Number(answer.headers.get('Retry-After') || 5) * 1000);
    return;
  }
  $('balance-error').textContent = '';
  const rows = answer.json.balances.map((balance) => {
    const tr = document.createElement('tr');
    tr.dataset.currency = balance.currency;
    tr.append(
      cell(balance.currency),
      cell(formatAmount(balance.available, balance.currency), 'number available'),
      cell(formatAmount(balance.held, balance.currency), 'number held'),
    );
    return tr;
  });
  $('balances').tBodies[0].replaceChildren(...rows);
  setCurrencies(answer.json.balances.map((balance) => balance.currency));
}

/** Offers the account's currencies (the configured ones and any it holds) in the form and the filter. */
function setCurrencies(currencies) {
  for (const [id, first] of [
    ['deposit-currency', []],
    ['filter-currency', [['', 'any']]],
  ]) {
    const select = $(id);
    const options = [...first, ...currencies.map((currency) => [currency, currency])];
    if ([...select.options].map((option) => option.value).join() === options.map(([value]) => value).join()) continue;
    const chosen = select.value;
    select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
    if (options.some(([value]) => value === chosen)) select.value = chosen;
  }
  showDepositKey();
}

// ---- the page of transactions ----

function filters() {
  return {
    type: $('filter-type').value,
    status: $('filter-status').value,
    currency: $('filter-currency').value,
    limit: $('filter-limit').value,
  };
}

function matches(t) {
  const f = filters();
  return (
    (!f.type || t.type === f.type) && (!f.status || t.status === f.status) && (!f.currency || t.currency === f.currency)
  );
}

function resetPaging() {
  Object.assign(state, { cursors: [], cursor: null, nextCursor: null, hasMore: false });
}

async function loadPage() {
  const signal = state.session.signal;
  const read = ++state.pageRead;
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filters())) if (value) query.set(name, value);
  if (state.cursor) query.set('cursor', state.cursor);
  let answer;
  try {
    answer = await api('GET', `/api/v1/users/${encodeURIComponent(state.userId)}/transactions?${query}`, { signal });
  } catch (error) {
    if (!isAbort(error) && read === state.pageRead) $('list-error').textContent = 'The gateway cannot be reached.';
    return;
  }
  if (signal.aborted || read !== state.pageRead) return;
  if (!answer.ok) {
    $('list-error').textContent = problem(answer);
    return;
  }
  $('list-error').textContent = '';
  state.nextCursor = answer.json.next_cursor;
  state.hasMore = answer.json.has_more;
  table.show(answer.json, { first: state.cursor === null });
  showPaging();
}

function showPaging() {
  $('newer').disabled = state.cursors.length === 0;
  $('older').disabled = !state.hasMore;
  $('page').textContent = `Page ${state.cursors.length + 1}`;
  $('empty').hidden = table.size() > 0;
}

// ---- the deposit form ----

/** The key for the deposit in the form: the same while its amount and currency stay the same. */
function depositKey() {
  const fingerprint = `${$('deposit-amount').value.trim()} ${$('deposit-currency').value}`;
  if (state.deposit.fingerprint !== fingerprint) state.deposit = { key: newIdempotencyKey(), fingerprint };
  return state.deposit.key;
}

function showDepositKey() {
  $('idempotency-key').textContent = depositKey();
}

async function deposit() {
  const currency = $('deposit-currency').value;
  const amount = parseAmount($('deposit-amount').value, currency);
  $('deposit-error').textContent = amount.error ?? '';
  $('deposit-result').textContent = '';
  if (amount.error) return;
  const body = { amount: amount.minor, currency };
  if (state.me.kind === 'admin') body.user_id = state.userId;
  const button = $('deposit-form').querySelector('button');
  button.disabled = true;
  try {
    const answer = await api('POST', '/api/v1/deposits', { body, idempotencyKey: depositKey() });
    if (answer.status === 202) {
      const replayed = answer.headers.get('Idempotent-Replayed') === 'true' ? ' (a replay: it existed already)' : '';
      $('deposit-result').textContent = `Deposit ${answer.json.id} created${replayed}.`;
      change(answer.json);
      state.deposit = { key: null, fingerprint: null };
    } else {
      $('deposit-error').textContent = problem(answer);
      // Only an answer that is final for this key gets a new one; the others may be retried with it.
      if (answer.status < 500 && answer.status !== 409 && answer.status !== 429) {
        state.deposit = { key: null, fingerprint: null };
      }
    }
  } catch {
    $('deposit-error').textContent = 'No answer from the gateway. Submit again to retry safely with the same key.';
  } finally {
    button.disabled = false;
    showDepositKey();
  }
}

// ---- wiring (a module runs once the document is parsed) ----

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void open($('key').value.trim());
});
$('forget').addEventListener('click', forget);
$('admin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const userId = $('admin-user').value.trim().toLowerCase();
  if (UUID.test(userId)) show(userId);
  else $('list-error').textContent = 'A user id is a UUID, such as 0190f3a0-7c1e-7b3a-9f21-6a4d2c8e5b10.';
});
$('deposit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void deposit();
});
$('deposit-amount').addEventListener('input', showDepositKey);
$('deposit-currency').addEventListener('change', showDepositKey);
$('filters').addEventListener('submit', (event) => event.preventDefault());
$('filters').addEventListener('change', () => {
  if (!state.userId) return;
  resetPaging();
  void loadPage();
});
$('refresh').addEventListener('click', () => {
  if (!state.userId) return;
  void loadBalance();
  void loadPage();
});
$('older').addEventListener('click', () => {
  state.cursors.push(state.cursor);
  state.cursor = state.nextCursor;
  void loadPage();
});
$('newer').addEventListener('click', () => {
  state.cursor = state.cursors.pop() ?? null;
  void loadPage();
});

const saved = sessionStorage.getItem(KEY_ITEM);
if (saved) void open(saved);
