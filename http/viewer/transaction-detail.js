// One transaction in full, beside the table: every field of it and its audit trail (the events of
// GET /api/v1/deposits/{id} or /withdrawals/{id}), read again whenever the event stream brings a
// change to it, so the panel follows the payment while it is open.

import { isAbort, problem } from './api.js';
import { formatMoney } from './money.js';
import { cell, failureText, notOlder, when } from './transaction-table.js';

const PATHS = { deposit: '/api/v1/deposits', withdrawal: '/api/v1/withdrawals' };
const NAMES = { deposit: 'Deposit', withdrawal: 'Withdrawal' };
// A burst of changes (processing, then succeeded a moment later) costs one read of the trail.
const READ_COALESCE_MS = 150;
const EVENT_NAMES = {
  transaction_created: 'created',
  transaction_processing: 'sent to the bank',
  attempt_failed: 'attempt failed',
  retry_requested: 'retry requested',
  transaction_succeeded: 'succeeded',
  transaction_failed: 'failed',
};
// An event's time to the millisecond (events of one payment are often within one second); its date
// is in the cell's title.
const EVENT_TIME = new Intl.DateTimeFormat(undefined, {
  hour: 'numeric',
  minute: '2-digit',
  second: '2-digit',
  fractionalSecondDigits: 3,
});
const NONE = '—';

/** The fields shown, in order: [name, label, text of the transaction]. */
const FIELDS = [
  ['id', 'Id', (t) => t.id],
  ['type', 'Type', (t) => t.type],
  ['user_id', 'User id', (t) => t.user_id],
  ['amount', 'Amount', (t) => formatMoney(t.amount, t.currency)],
  ['status', 'Status', (t) => t.status],
  ['failure', 'Failure', (t) => failureText(t) || NONE],
  ['bank_reference', 'Bank reference', (t) => t.bank_reference ?? 'none yet'],
  ['attempts', 'Bank attempts', (t) => String(t.attempts)],
  ['created_at', 'Created', (t) => when(t.created_at)],
  ['updated_at', 'Updated', (t) => when(t.updated_at)],
  ['completed_at', 'Completed', (t) => (t.completed_at ? when(t.completed_at) : 'not yet')],
  ['description', 'Description', (t) => t.description ?? NONE],
  ['metadata', 'Metadata', (t) => (t.metadata ? JSON.stringify(t.metadata, null, 2) : NONE)],
];

/** What an event adds beyond its type: the bank's reference, the attempt, the failure or error. */
function eventDetails(event) {
  const parts = [];
  if (event.bank_reference) parts.push(`bank reference ${event.bank_reference}`);
  if (event.attempts !== undefined) parts.push(`attempt ${event.attempts}`);
  if (event.failure) parts.push(`${event.failure.message} (${event.failure.code})`);
  if (event.error) parts.push(String(event.error));
  return parts.join('; ');
}

function eventRow(event) {
  const tr = document.createElement('tr');
  tr.dataset.type = event.type;
  tr.append(
    cell(String(event.seq), 'number'),
    cell(EVENT_NAMES[event.type] ?? event.type, 'event'),
    cell(EVENT_TIME.format(new Date(event.at)), 'time'),
    cell(event.cause),
    cell(event.request_id ?? NONE, 'id'),
    cell(eventDetails(event), 'details'),
  );
  // An event that moves the status is coloured as that status.
  if (event.status) tr.cells[1].dataset.status = event.status;
  tr.cells[2].title = when(event.at);
  return tr;
}

/**
 * The panel made of `elements` (panel, title, failure, fields, events, error, close). `api` calls
 * the gateway; `onClose(id)` is told when the person closes it, to give the focus back to the row.
 */
export function createTransactionDetail({ elements, api, onClose }) {
  const { panel, title, failure, fields, events, error, close } = elements;
  /** The transaction shown, the reads of its trail (only the latest is shown), and what aborts them. */
  let open = null;

  function fill(t) {
    open.transaction = t;
    title.textContent = `${NAMES[t.type]} of ${formatMoney(t.amount, t.currency)}, ${t.status}`;
    failure.hidden = !t.failure;
    failure.textContent = t.failure ? `Failed: ${failureText(t)}` : '';
    fields.replaceChildren(
      ...FIELDS.flatMap(([name, label, text]) => {
        const dt = document.createElement('dt');
        dt.textContent = label;
        const dd = document.createElement('dd');
        dd.dataset.field = name;
        // Metadata keeps its JSON layout; everything else is one line of text.
        if (name === 'metadata' && t.metadata) dd.append(document.createElement('pre'));
        (dd.firstElementChild ?? dd).textContent = text(t);
        if (name === 'status') dd.dataset.status = t.status;
        return [dt, dd];
      }),
    );
  }

  async function read() {
    const { id, type } = open.transaction;
    const reading = ++open.reads;
    const signal = open.controller.signal;
    let answer;
    try {
      answer = await api('GET', `${PATHS[type]}/${encodeURIComponent(id)}`, { signal });
    } catch (failed) {
      if (!isAbort(failed) && open?.reads === reading) error.textContent = 'The gateway cannot be reached.';
      return;
    }
    if (signal.aborted || open.reads !== reading) return;
    if (!answer.ok) {
      error.textContent = problem(answer);
      return;
    }
    error.textContent = '';
    const { events: trail, ...transaction } = answer.json;
    if (notOlder(transaction, open.transaction)) fill(transaction);
    events.tBodies[0].replaceChildren(...trail.map(eventRow));
  }

  function scheduleRead() {
    if (open.timer) return;
    open.timer = setTimeout(() => {
      if (!open) return;
      open.timer = null;
      void read();
    }, READ_COALESCE_MS);
  }

  function hide() {
    if (!open) return;
    open.controller.abort();
    clearTimeout(open.timer);
    open = null;
    panel.hidden = true;
  }

  close.addEventListener('click', () => {
    const id = open?.transaction.id;
    hide();
    onClose(id);
  });
  panel.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const id = open?.transaction.id;
    hide();
    onClose(id);
  });

  return {
    /** Opens the panel on `t` (as the table knows it) and reads its full record and trail. */
    show(t) {
      hide();
      open = { transaction: t, reads: 0, timer: null, controller: new AbortController() };
      events.tBodies[0].replaceChildren();
      error.textContent = '';
      fill(t);
      panel.hidden = false;
      panel.focus();
      void read();
    },

    /** A change from the stream: shown at once when it is the open transaction's, and its trail read again. */
    change(t) {
      if (!open || open.transaction.id !== t.id) return;
      if (notOlder(t, open.transaction)) fill(t);
      scheduleRead();
    },

    /** Closes the panel (another account, or signed out). */
    hide,
  };
}
