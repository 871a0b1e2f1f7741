// The transaction viewer (an ES module of this origin; no build step). It calls this gateway's API
// with the key the person entered, kept in this tab's sessionStorage, and keeps the page current from
// GET /api/v1/events. Every string from the API is placed as text, never as markup.

import { call, isAbort, problem } from './api.js';
import { followEvents } from './event-stream.js';
import { formatAmount } from './money.js';
import { createPaymentForm } from './payment-form.js';
import { createTransactionDetail } from './transaction-detail.js';
import { cell, createTransactionTable } from './transaction-table.js';
import { createUserPicker } from './user-picker.js';

const KEY_ITEM = 'gateway.viewer.api_key';
// A burst of changes costs one balance read (the balance has a per-minute limit).
const BALANCE_COALESCE_MS = 300;
const LIVE_TEXT = { off: 'offline', connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…' };

const $ = (id) => document.getElementById(id);

/** The gateway's configured currencies, which the page names in its `currencies` meta element. */
const CONFIGURED_CURRENCIES = document.querySelector('meta[name="currencies"]').content.split(',').filter(Boolean);

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
};

const api = (method, path, options) => call(state.key, method, path, options);
const table = createTransactionTable({ tbody: $('rows'), matches, onOpen: (t) => detail.show(t) });
const detail = createTransactionDetail({
  api,
  elements: {
    panel: $('detail'),
    title: $('detail-title'),
    failure: $('detail-failure'),
    fields: $('detail-fields'),
    events: $('detail-events'),
    error: $('detail-error'),
    close: $('detail-close'),
  },
  // The focus goes back to the row the panel was opened from.
  onClose: (id) => [...$('rows').rows].find((tr) => tr.dataset.id === id)?.focus(),
});
/** Whose account the forms act on: null while the admin has not chosen anyone. */
const target = () => (state.userId ? { userId: state.userId, admin: state.me.kind === 'admin' } : null);
const forms = ['deposit', 'withdrawal'].map((type) =>
  createPaymentForm({
    type,
    api,
    target,
    onCreated: change,
    elements: {
      form: $(`${type}-form`),
      amount: $(`${type}-amount`),
      currency: $(`${type}-currency`),
      description: $(`${type}-description`),
      key: $(type === 'deposit' ? 'idempotency-key' : 'withdrawal-idempotency-key'),
      result: $(`${type}-result`),
      error: $(`${type}-error`),
    },
  }),
);
const picker = createUserPicker({
  api,
  elements: { form: $('admin-form'), input: $('admin-user'), matches: $('user-matches'), status: $('picker-status') },
  onPick: (user) => show(user.id, user),
});

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
  setCurrencies(CONFIGURED_CURRENCIES);
  if (admin) {
    // Until a user is chosen the admin follows everyone's changes: the connection is live from the start.
    follow(null);
    showChosen();
    $('admin-user').focus();
  } else show(state.me.id);
}

function forget() {
  state.session?.abort();
  Object.assign(state, { session: null, key: null, me: null, userId: null });
  sessionStorage.removeItem(KEY_ITEM);
  detail.hide();
  picker.clear();
  for (const form of forms) form.clear();
  table.clear();
  $('balances').tBodies[0].replaceChildren();
  $('key').value = '';
  $('account').hidden = true;
  $('signin').hidden = false;
  setLive('off');
}

/**
 * Shows one account: subscribes to its changes, and once subscribed reads its balance and first
 * page. `user` is what the admin's picker knows of the user (name, email), when it came from there.
 */
function show(userId, user) {
  state.userId = userId;
  detail.hide();
  table.clear();
  $('balances').tBodies[0].replaceChildren();
  $('list-error').textContent = '';
  $('balance-error').textContent = '';
  resetPaging();
  showChosen(user);
  for (const form of forms) form.clear();
  follow(userId);
  if (state.me.kind === 'admin' && !user?.email) void nameChosen(userId);
}

/** The account line: whose account is shown, or (admin) that nobody is chosen yet. */
function showChosen(user) {
  const chosen = state.userId !== null;
  $('account-of').hidden = !chosen;
  $('choose-user').hidden = chosen;
  $('user-id').textContent = state.userId ?? '';
  $('shown-user').textContent = user?.email ? `Showing ${user.name} (${user.email}),` : '';
  if (!chosen) $('empty').hidden = true;
}

/** Names the user the admin opened by id, so the page says whose account it is. */
async function nameChosen(userId) {
  const signal = state.session.signal;
  const answer = await api('GET', `/api/v1/users/${encodeURIComponent(userId)}`, { signal }).catch(() => null);
  if (answer?.ok && !signal.aborted) showChosen(answer.json);
}

/** Follows the changes of `userId`'s account (the admin's null: everyone's, with nothing to read yet). */
function follow(userId) {
  state.session?.abort();
  state.session = new AbortController();
  void followEvents({
    key: state.key,
    query: state.me.kind === 'admin' && userId ? `?user_id=${encodeURIComponent(userId)}` : '',
    signal: state.session.signal,
    onState: setLive,
    onOpen: () => {
      if (!userId) return;
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
      $('list-error').textContent = problem({ status: response.status, json: answer, headers: response.headers });
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
  detail.change(transaction);
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

/** Offers the account's currencies (the configured ones and any it holds) in the forms and the filter. */
function setCurrencies(currencies) {
  for (const [id, first] of [
    ['deposit-currency', []],
    ['withdrawal-currency', []],
    ['filter-currency', [['', 'any']]],
  ]) {
    const select = $(id);
    const options = [...first, ...currencies.map((currency) => [currency, currency])];
    if ([...select.options].map((option) => option.value).join() === options.map(([value]) => value).join()) continue;
    const chosen = select.value;
    select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
    if (options.some(([value]) => value === chosen)) select.value = chosen;
  }
  for (const form of forms) form.refresh();
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

// ---- wiring (a module runs once the document is parsed) ----

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void open($('key').value.trim());
});
$('forget').addEventListener('click', forget);
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
