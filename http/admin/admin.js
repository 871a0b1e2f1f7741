// The admin panel (an ES module of this origin; no build step). It asks once for the admin key, keeps
// it in this tab's sessionStorage, and calls the gateway's public API with it; the URL's hash says
// which section and item are shown (route.js), and each section's module fills its view.

import { call, isAbort, problem } from '/viewer/api.js';
import { showDeadLetters } from './dead-letters.js';
import { $ } from './dom.js';
import { showReconciliation } from './reconciliation.js';
import { formatRoute, parseRoute } from './route.js';
import { showShards } from './shards.js';
import { showTransaction, showTransactions } from './transactions.js';
import { showUser, showUsers } from './users.js';
import { showDeliveries, showDelivery, showEndpoint, showEndpoints } from './webhooks.js';

const KEY_ITEM = 'gateway.admin.api_key';

/** The view of each route: a section's list, or one of its items. */
const VIEWS = {
  users: (route) => (route.id ? ['user', showUser] : ['users', showUsers]),
  transactions: (route) => (route.id ? ['transaction', showTransaction] : ['transactions', showTransactions]),
  'dead-letters': () => ['dead-letters', showDeadLetters],
  webhooks: (route) => (route.id ? ['endpoint', showEndpoint] : ['webhooks', showEndpoints]),
  'webhook-deliveries': (route) =>
    route.id ? ['webhook-delivery', showDelivery] : ['webhook-deliveries', showDeliveries],
  reconciliation: () => ['reconciliation', showReconciliation],
  shards: () => ['shards', showShards],
};

const state = {
  key: null,
  /** Aborts the shown view's reads when another is shown. */
  view: null,
  /** The hash last shown, so that one navigation (which fires both popstate and hashchange) renders once. */
  shown: null,
};

/** What went wrong, in words: the API's message and fields, and the request id to look for in the logs. */
function explain(answer) {
  const json = answer.json ?? {};
  const id = json.request_id ?? (typeof json.error === 'object' && json.error !== null ? json.error.request_id : null);
  return `${problem(answer)}${id ? ` (request ${id})` : ''}`;
}

// ---- the key ----

async function open(key) {
  $('key-error').textContent = '';
  let me;
  try {
    me = await call(key, 'GET', '/api/v1/me');
  } catch {
    $('key-error').textContent = 'The gateway cannot be reached.';
    return;
  }
  if (!me.ok || me.json.kind !== 'admin') {
    sessionStorage.removeItem(KEY_ITEM);
    if (me.status === 401) $('key-error').textContent = 'This key is not valid.';
    else if (me.ok) $('key-error').textContent = 'This key belongs to a user, not to the admin.';
    else $('key-error').textContent = explain(me);
    return;
  }
  state.key = key;
  sessionStorage.setItem(KEY_ITEM, key);
  $('signin').hidden = true;
  $('app').hidden = false;
  $('forget').hidden = false;
  render({ focus: false });
}

function forget(message = '') {
  state.view?.abort();
  Object.assign(state, { key: null, view: null, shown: null });
  sessionStorage.removeItem(KEY_ITEM);
  $('key').value = '';
  $('app').hidden = true;
  $('forget').hidden = true;
  $('signin').hidden = false;
  $('key-error').textContent = message;
  $('key').focus();
}

// ---- navigation ----

/** Goes to a route: a new history entry (with `entryState`, e.g. a pager's earlier cursors), then its view. */
function go(route, entryState = null) {
  history.pushState(entryState, '', formatRoute(route));
  render({ focus: true });
}

/** Shows the view the hash names, and loads what it shows. */
function render({ focus }) {
  if (!state.key) return;
  state.shown = location.hash;
  state.view?.abort();
  state.view = new AbortController();
  const route = parseRoute(location.hash);
  const [viewId, show] = VIEWS[route.section](route);
  for (const view of document.querySelectorAll('[data-view]')) view.hidden = view.dataset.view !== viewId;
  for (const item of document.querySelectorAll('nav [data-section]')) {
    if (item.dataset.section === route.section) item.setAttribute('aria-current', 'page');
    else item.removeAttribute('aria-current');
  }
  if (focus) $(viewId).querySelector('h2').focus();
  void show(route, context(state.view.signal));
}

/** What a view's module uses: the API as the admin, navigation, and words for errors. */
function context(signal) {
  /**
   * Calls the API for this view; resolves to the answer, or to undefined when there is nothing to show:
   * the view was left (aborted), or no answer came (said in the element `errorId`). A 401 means the
   * key stopped working: the panel asks for it again.
   */
  async function request(method, path, { errorId, ...options } = {}) {
    let answer;
    try {
      answer = await call(state.key, method, path, { ...options, signal });
    } catch (error) {
      if (!isAbort(error) && !signal.aborted && errorId) $(errorId).textContent = 'The gateway cannot be reached.';
      return undefined;
    }
    if (signal.aborted) return undefined;
    if (answer.status === 401) {
      forget('The admin key is no longer accepted.');
      return undefined;
    }
    return answer;
  }

  /** A GET whose body is shown: the JSON, or undefined with the reason shown in `errorId`. */
  async function read(path, errorId) {
    $(errorId).textContent = '';
    const answer = await request('GET', path, { errorId });
    if (!answer) return undefined;
    if (!answer.ok) {
      $(errorId).textContent = explain(answer);
      return undefined;
    }
    return answer.json;
  }

  return { request, read, go, signal, explain };
}

// ---- wiring (a module runs once the document is parsed) ----

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void open($('key').value.trim());
});
$('forget').addEventListener('click', () => forget());
for (const event of ['popstate', 'hashchange']) {
  window.addEventListener(event, () => {
    if (location.hash !== state.shown) render({ focus: true });
  });
}

const saved = sessionStorage.getItem(KEY_ITEM);
if (saved) void open(saved);
else $('key').focus();
