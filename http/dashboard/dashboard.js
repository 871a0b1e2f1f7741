// The dashboard page: polls /api/state every STATE_MS and /api/series every SERIES_MS while the tab is
// visible, and redraws. Plain DOM and ES modules, no build step. Every value is set as text (never as
// HTML): user ids, errors and reasons are data, not markup. Its reads and its one write need the admin
// key, which the operator types in and this tab keeps.

import { createCharts } from './charts.js';
import { formatAmount } from './money.js';

const STATE_MS = 2000;
const SERIES_MS = 1000;
const KEY_STORAGE = 'payment-gateway-admin-key';

const byId = (id) => document.getElementById(id);
const storedKey = () => sessionStorage.getItem(KEY_STORAGE);

/** Shows why the page shows nothing yet and puts the cursor in the key field; no text hides the prompt. */
function promptForKey(text) {
  const prompt = byId('key-prompt');
  prompt.textContent = text;
  prompt.hidden = !text;
  if (text) byId('admin-key').focus();
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '' : String(text);
  if (className) td.className = className;
  return td;
}

function fill(tbodyId, items, columns, emptyText) {
  const tbody = byId(tbodyId);
  const rows = items.map((item) => {
    const tr = document.createElement('tr');
    for (const column of columns) tr.append(column(item));
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(emptyText, 'empty');
    td.colSpan = tbody.closest('table').querySelectorAll('th').length;
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
const rate = (value) => value.toFixed(2);
/** Minor units as the API carries them ("1050") → "10.50 USD", with the viewer's formatting. */
const money = (minor, currency) => `${formatAmount(Number(minor), currency)} ${currency}`;
/** An id in full, monospace; one click selects all of it for copying. */
const id = (value) => cell(value, 'id');

/** 0,1,2,3,7,8 → "0–3, 7–8". */
function ranges(numbers) {
  const parts = [];
  let start = null;
  let previous = null;
  for (const n of [...numbers].sort((a, b) => a - b)) {
    if (start === null) start = n;
    else if (n !== previous + 1) {
      parts.push(start === previous ? `${start}` : `${start}–${previous}`);
      start = n;
    }
    previous = n;
  }
  if (start !== null) parts.push(start === previous ? `${start}` : `${start}–${previous}`);
  return parts.join(', ');
}

function retryButton(letter) {
  const td = document.createElement('td');
  if (letter.retried_at) {
    td.textContent = `retried ${time(letter.retried_at)}`;
    return td;
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = 'Retry';
  button.addEventListener('click', () => retry(letter.id, button));
  td.append(button);
  return td;
}

async function retry(id, button) {
  const key = storedKey();
  const result = byId('retry-result');
  if (!key) {
    result.textContent = 'Enter the admin key first.';
    byId('admin-key').focus();
    return;
  }
  button.disabled = true;
  try {
    const response = await fetch(`/api/dead-letters/${encodeURIComponent(id)}/retry`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}` },
    });
    const body = await response.json().catch(() => ({}));
    result.textContent =
      response.status === 202
        ? `Retrying ${body.transaction_id}.`
        : `Refused (${response.status}): ${body.message ?? ''}`;
  } catch (error) {
    result.textContent = `Retry failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function render(state) {
  byId('instance').textContent = state.instance;
  const circuit = byId('circuit');
  circuit.textContent = state.circuit.replace('_', '-');
  circuit.className = `value circuit-${state.circuit}`;
  byId('actors').textContent = state.actors.alive;
  byId('mailbox').textContent = state.actors.mailbox_depth;
  byId('in-flight').textContent = state.payments.in_flight;
  byId('created-rate').textContent = rate(state.throughput.created_per_s);
  byId('finished-rate').textContent = rate(state.throughput.finished_per_s);
  byId('shards-owned').textContent = `${state.shards.owned_here} / ${state.shards.total}`;

  fill(
    'payments',
    state.payments.shown,
    [
      (p) => id(p.transaction_id),
      (p) => id(p.user_id),
      (p) => cell(p.type),
      (p) => cell(money(p.amount, p.currency), 'amount'),
      (p) => cell(p.phase.replaceAll('_', ' ')),
      (p) => cell(p.attempts),
      (p) => cell(p.polls),
      (p) => cell(time(p.next_at)),
      (p) => cell(p.last_error, 'wrap'),
    ],
    'No payment is being driven.',
  );
  fill(
    'recent',
    state.recent,
    [
      (t) => cell(time(t.completed_at)),
      (t) => id(t.id),
      (t) => id(t.user_id),
      (t) => cell(t.type),
      (t) => cell(money(t.amount, t.currency), 'amount'),
      (t) => cell(t.status, t.status),
      (t) => cell(t.failure_code),
      (t) => cell(t.attempts),
    ],
    'Nothing finished since this instance started.',
  );
  fill(
    'dead-letters',
    state.dead_letters,
    [
      (d) => cell(time(d.created_at)),
      (d) => id(d.transaction_id),
      (d) => id(d.user_id),
      (d) => cell(d.attempts),
      (d) => cell(d.reason, 'wrap'),
      (d) => cell(d.last_error, 'wrap'),
      retryButton,
    ],
    'No dead letters.',
  );
  fill(
    'shards',
    state.shards.owners,
    [
      (o) => cell(o.owner === state.instance ? `${o.owner} (this instance)` : (o.owner ?? 'nobody')),
      (o) => cell(ranges(o.shards), 'wrap'),
      (o) => cell(o.shards.length),
      (o) => cell(o.epoch_max),
      // The earliest of the owner's leases in Redis; shards nobody holds have none.
      (o) => cell(o.lease_expires_at ? time(o.lease_expires_at) : '—'),
      (o) => cell(o.actors_alive ?? '—'),
    ],
    'No shard is leased yet.',
  );
}

const charts = createCharts();

/** Shows that a read failed, and why; the pollers keep trying. */
function failing(text) {
  const status = byId('status');
  status.textContent = text;
  status.className = 'failing';
}

/**
 * Reads `path` with the admin key every `period_ms` and hands the answer to `show`. It stops without
 * a key or with a refused one (the key form starts it again), and while the tab is hidden (it starts
 * again when the tab is shown): nobody looking, nothing asked.
 */
function poller(path, period_ms, show) {
  let timer;
  async function poll() {
    clearTimeout(timer);
    const key = storedKey();
    if (!key) {
      failing('waiting for the admin key');
      promptForKey('Enter the admin key (ADMIN_API_KEY) to see this dashboard.');
      return;
    }
    try {
      const response = await fetch(path, { cache: 'no-store', headers: { Authorization: `Bearer ${key}` } });
      if (response.status === 401) {
        // A key the other poller already found refused is gone: only the first refusal says so.
        if (storedKey() === key) {
          sessionStorage.removeItem(KEY_STORAGE);
          byId('retry-result').textContent = '';
          failing('the admin key was refused');
          promptForKey('That admin key was refused (401). Enter the admin key (ADMIN_API_KEY) again.');
        }
        return;
      }
      if (!response.ok) throw new Error(`${path} answered ${response.status}`);
      show(await response.json());
      promptForKey('');
      const status = byId('status');
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      status.className = '';
    } catch (error) {
      failing(`cannot reach the gateway (${error.message}); retrying`);
    }
    // Cleared first: a poll started while another was awaiting its answer leaves one timer, not two.
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(poll, period_ms);
  }
  return poll;
}

const pollers = [poller('/api/state', STATE_MS, render), poller('/api/series', SERIES_MS, charts.update)];
const refresh = () => pollers.forEach((poll) => void poll());

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});

byId('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = byId('admin-key');
  if (input.value) sessionStorage.setItem(KEY_STORAGE, input.value);
  else sessionStorage.removeItem(KEY_STORAGE);
  input.value = '';
  byId('retry-result').textContent = storedKey() ? 'Key set for this tab.' : 'Key cleared.';
  refresh();
});

refresh();
