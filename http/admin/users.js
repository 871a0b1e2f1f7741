// Users: the list (newest first, searched by name, email or id), a new user with its key shown once,
// and one user: their fields, balance, API keys (add, revoke, rotate), transactions and webhook endpoints.

import { newIdempotencyKey } from '/viewer/api.js';
import { $, cell, el, fillTable, fullId, hideSecret, link, money, showSecret, when } from './dom.js';
import { pager } from './route.js';
import { transactionRow } from './transactions.js';
import { endpointRow } from './webhooks.js';

const PAGE_LIMIT = 20;

/** The context of the view on screen (admin.js makes one per view), and the list's route when it is the list. */
let ctx;
let listRoute;
/** The user on screen. */
let shown = { id: null };
/** The new user's form: the same Idempotency-Key while its contents stay the same, so a resubmit replays. */
let creation = { key: null, fingerprint: null };

const userPath = (id, rest = '') => `/api/v1/users/${encodeURIComponent(id)}${rest}`;
const userHash = (id) => `#/users/${encodeURIComponent(id)}`;

// ---- the list ----

/** `#/users?search=…&cursor=…`: a page of users. */
export async function showUsers(route, context) {
  ctx = context;
  listRoute = route;
  hideSecret('user-create-result');
  $('user-create-error').textContent = '';
  $('user-search-text').value = route.query.get('search') ?? '';
  await loadUsers();
}

async function loadUsers() {
  const route = listRoute;
  const query = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  for (const name of ['search', 'cursor']) if (route.query.get(name)) query.set(name, route.query.get(name));
  const page = await ctx.read(`/api/v1/users?${query}`, 'user-error');
  if (!page) return;
  const rows = page.data.map((user) =>
    el(
      'tr',
      { dataset: { id: user.id } },
      cell(link(userHash(user.id), user.name)),
      cell(user.email, 'wrap'),
      cell(when(user.created_at)),
      cell(String(user.api_keys_active), 'number'),
      cell(fullId(user.id)),
    ),
  );
  fillTable('user-table', rows, 'user-empty');
  pager({ nav: $('user-pager'), route, page, go: ctx.go });
}

async function createUser() {
  const body = { name: $('user-create-name').value.trim(), email: $('user-create-email').value.trim() };
  const fingerprint = JSON.stringify(body);
  if (creation.fingerprint !== fingerprint) creation = { key: newIdempotencyKey(), fingerprint };
  $('user-create-error').textContent = '';
  hideSecret('user-create-result');
  const answer = await ctx.request('POST', '/api/v1/users', {
    body,
    idempotencyKey: creation.key,
    errorId: 'user-create-error',
  });
  if (!answer) return;
  if (answer.status !== 201) {
    $('user-create-error').textContent = ctx.explain(answer);
    return;
  }
  creation = { key: null, fingerprint: null };
  $('user-create').reset();
  const user = answer.json;
  if (user.api_key) {
    showSecret('user-create-result', `${user.name} (${user.email}) was created. Their API key:`, user.api_key);
  } else {
    // A replay of an earlier submission: the key was in that answer only.
    $('user-create-result').replaceChildren(
      el('p', { text: `${user.name} was created by an earlier submission; its key was shown then.` }),
    );
    $('user-create-result').hidden = false;
  }
  $('user-create-result').append(el('p', {}, link(userHash(user.id), `Open ${user.name}`)));
  await loadUsers();
}

// ---- one user ----

/** `#/users/{id}?cursor=…`: the user, their balance, keys, a page of their transactions, their webhook endpoints. */
export async function showUser(route, context) {
  ctx = context;
  shown = { id: route.id };
  hideSecret('key-secret');
  for (const id of ['key-action-error', 'user-detail-error']) $(id).textContent = '';
  $('user-title').textContent = 'User';
  $('user-fields').replaceChildren();
  for (const table of ['user-balance', 'key-table', 'user-transactions', 'user-endpoints']) fillTable(table, []);
  $('user-all-transactions').href = `#/transactions?user_id=${encodeURIComponent(route.id)}`;
  $('user-all-endpoints').href = `#/webhooks?user_id=${encodeURIComponent(route.id)}`;
  await Promise.all([
    loadUser(route.id),
    loadBalance(route.id),
    loadKeys(route.id),
    loadTransactions(route),
    loadEndpoints(route.id),
  ]);
}

async function loadUser(id) {
  const user = await ctx.read(userPath(id), 'user-detail-error');
  if (!user) return;
  $('user-title').textContent = user.name;
  const fields = [
    ['Id', fullId(user.id)],
    ['Name', user.name],
    ['Email', user.email],
    ['Created', when(user.created_at)],
  ];
  $('user-fields').replaceChildren(
    ...fields.flatMap(([name, value]) => [el('dt', { text: name }), el('dd', {}, value)]),
  );
}

async function loadBalance(id) {
  const answer = await ctx.read(userPath(id, '/balance'), 'user-balance-error');
  if (!answer) return;
  const rows = answer.balances.map((balance) =>
    el(
      'tr',
      { dataset: { currency: balance.currency } },
      cell(balance.currency),
      cell(money(balance.available, balance.currency), 'number available'),
      cell(money(balance.held, balance.currency), 'number held'),
    ),
  );
  fillTable('user-balance', rows);
}

async function loadTransactions(route) {
  const query = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  if (route.query.get('cursor')) query.set('cursor', route.query.get('cursor'));
  const page = await ctx.read(userPath(route.id, `/transactions?${query}`), 'user-transactions-error');
  if (!page) return;
  const rows = page.data.map((transaction) => transactionRow(transaction, { withUser: false }));
  fillTable('user-transactions', rows, 'user-transactions-empty');
  pager({ nav: $('user-transactions-pager'), route, page, go: ctx.go });
}

/** The user's newest webhook endpoints; the Webhooks section pages through all of them. */
async function loadEndpoints(id) {
  const query = new URLSearchParams({ user_id: id, limit: String(PAGE_LIMIT) });
  const page = await ctx.read(`/api/v1/webhook-endpoints?${query}`, 'user-endpoints-error');
  if (!page) return;
  fillTable(
    'user-endpoints',
    page.data.map((endpoint) => endpointRow(endpoint, { withUser: false })),
    'user-endpoints-empty',
  );
}

// ---- API keys ----

async function loadKeys(id) {
  const list = await ctx.read(userPath(id, '/api-keys'), 'key-error-list');
  if (!list || id !== shown.id) return;
  const rows = list.data.map((key) => {
    const actions = el('div', { class: 'actions' });
    if (!key.revoked_at) {
      const rotate = el('button', { type: 'button', text: 'Rotate', 'aria-label': `Rotate the key ${key.prefix}…` });
      const revoke = el('button', { type: 'button', text: 'Revoke', 'aria-label': `Revoke the key ${key.prefix}…` });
      rotate.addEventListener('click', () => void rotateKey(key, actions));
      revoke.addEventListener('click', () => void revokeKey(key, actions));
      actions.append(rotate, revoke);
    }
    return el(
      'tr',
      { dataset: { id: key.id, state: key.revoked_at ? 'revoked' : 'active' } },
      cell(key.label ?? '—'),
      cell(el('code', { text: `${key.prefix}…` })),
      cell(when(key.created_at)),
      cell(key.revoked_at ? when(key.revoked_at) : 'active'),
      cell(fullId(key.id)),
      cell(actions),
    );
  });
  fillTable('key-table', rows);
}

/** Adds a key to the user on screen; resolves to the answer's key object, or undefined (the reason shown). */
async function addKey(userId, label) {
  const answer = await ctx.request('POST', userPath(userId, '/api-keys'), {
    body: label ? { label } : {},
    idempotencyKey: newIdempotencyKey(),
    errorId: 'key-action-error',
  });
  if (!answer) return undefined;
  if (answer.status !== 201) {
    $('key-action-error').textContent = ctx.explain(answer);
    return undefined;
  }
  return answer.json;
}

/** Revokes one key of the user on screen; true when the gateway did. */
async function revoke(userId, key) {
  const answer = await ctx.request('POST', userPath(userId, `/api-keys/${encodeURIComponent(key.id)}/revoke`), {
    idempotencyKey: newIdempotencyKey(),
    errorId: 'key-action-error',
  });
  if (!answer) return false;
  if (!answer.ok) $('key-action-error').textContent = ctx.explain(answer);
  return answer.ok;
}

/** Runs one key action with its buttons (a row's, or the form's) disabled, then reads the keys again. */
async function keyAction(actions, work) {
  const userId = shown.id;
  const buttons = [...actions.querySelectorAll('button')];
  $('key-action-error').textContent = '';
  hideSecret('key-secret');
  for (const button of buttons) button.disabled = true;
  try {
    await work(userId);
  } finally {
    for (const button of buttons) button.disabled = false;
    if (userId === shown.id) await loadKeys(userId);
  }
}

async function addKeyFromForm() {
  await keyAction($('key-add'), async (userId) => {
    const created = await addKey(userId, $('key-add-label').value.trim());
    if (!created) return;
    $('key-add').reset();
    showSecret('key-secret', `New key "${created.label ?? 'unlabelled'}" (${created.prefix}…):`, created.api_key);
  });
}

function revokeKey(key, actions) {
  const question = `Revoke the key ${key.prefix}…? Requests with it are refused within seconds.`;
  if (!confirm(question)) return Promise.resolve();
  return keyAction(actions, (userId) => revoke(userId, key));
}

/** A rotation: a new key with the old one's label, then the old key revoked; the new key shown once. */
function rotateKey(key, actions) {
  const question = `Replace the key ${key.prefix}… with a new one? The old key stops working within seconds.`;
  if (!confirm(question)) return Promise.resolve();
  return keyAction(actions, async (userId) => {
    const created = await addKey(userId, key.label ?? '');
    if (!created) return;
    showSecret('key-secret', `The new key replacing ${key.prefix}… (${created.prefix}…):`, created.api_key);
    if (!(await revoke(userId, key))) {
      const reason = $('key-action-error').textContent;
      $('key-action-error').textContent = `The new key was made, but the old one is still active: ${reason}`;
    }
  });
}

// ---- wiring ----

$('user-search').addEventListener('submit', (event) => {
  event.preventDefault();
  ctx.go({ section: 'users', query: new URLSearchParams({ search: $('user-search-text').value.trim() }) });
});
$('user-create').addEventListener('submit', (event) => {
  event.preventDefault();
  void createUser();
});
$('key-add').addEventListener('submit', (event) => {
  event.preventDefault();
  void addKeyFromForm();
});
