// The page of transactions on screen: the rows of one page read from the API, kept current by the
// changes the event stream brings, without reading the page again.

import { formatAmount } from './money.js';

// The latest changes remembered, to merge into a page whose read was in flight while they arrived.
const RECENT_MAX = 500;
const STATUS_RANK = { pending: 0, processing: 1, succeeded: 2, failed: 2 };
const COLUMNS = [
  'created',
  'type',
  'number amount',
  'currency',
  'status',
  'failure',
  'number attempts',
  'updated',
  'id',
];
const STATUS_COLUMN = COLUMNS.indexOf('status');
const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
export const when = (iso) => TIME_FORMAT.format(new Date(iso));

/** Why a transaction failed, in words ("The bank declined the transfer. (declined)"); empty when it did not. */
export const failureText = (t) => (t.failure ? `${t.failure.message} (${t.failure.code})` : '');

/** Whether `a` is at least as far along as `b`: a transaction's status never goes backwards. */
export function notOlder(a, b) {
  if (STATUS_RANK[a.status] !== STATUS_RANK[b.status]) return STATUS_RANK[a.status] > STATUS_RANK[b.status];
  return a.updated_at >= b.updated_at;
}

/** Whether `a` comes before `b` in the API's order: newest first, by created_at, then id. */
function before(a, b) {
  return a.created_at !== b.created_at ? a.created_at > b.created_at : a.id > b.id;
}

/** A table cell holding text (never markup). */
export function cell(text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

/**
 * The rows in `tbody`. `matches(t)` tells whether a transaction passes the filters in force; rows
 * that stop matching stay on the page, dimmed, until it is read again. `onOpen(t)` is called when a
 * row is clicked or Enter is pressed on it (each row is focusable).
 */
export function createTransactionTable({ tbody, matches, onOpen }) {
  const rows = new Map();
  const recent = new Map();
  let firstPage = true;
  let hasMore = false;

  /** Writes a transaction into its row, touching only the cells whose text changes. */
  function fill(tr, t, highlight) {
    if (tr.cells.length === 0) {
      tr.dataset.id = t.id;
      tr.tabIndex = 0;
      for (const name of COLUMNS) tr.append(cell('', name));
    }
    const texts = [
      when(t.created_at),
      t.type,
      formatAmount(t.amount, t.currency),
      t.currency,
      t.status,
      failureText(t),
      String(t.attempts),
      when(t.updated_at),
      t.id,
    ];
    texts.forEach((text, i) => {
      if (tr.cells[i].textContent !== text) tr.cells[i].textContent = text;
    });
    tr.cells[STATUS_COLUMN].dataset.status = t.status;
    tr.dataset.status = t.status;
    const unmatched = !matches(t);
    tr.classList.toggle('unmatched', unmatched);
    tr.title = unmatched
      ? 'Changed since the page was read; it no longer matches the filters.'
      : 'Show the details and the audit trail';
    if (highlight) {
      tr.classList.remove('changed');
      void tr.offsetWidth;
      tr.classList.add('changed');
    }
  }

  function add(t, beforeRow, highlight) {
    const tr = document.createElement('tr');
    fill(tr, t, highlight);
    rows.set(t.id, { transaction: t, tr });
    tbody.insertBefore(tr, beforeRow);
  }

  /**
   * Applies a transaction's latest version: updates its row in place, or, on the first page, inserts
   * it where it belongs when it matches the filters and does not fall past the page's end.
   */
  function merge(t, highlight) {
    const shown = rows.get(t.id);
    if (shown) {
      if (!notOlder(t, shown.transaction)) return;
      shown.transaction = t;
      fill(shown.tr, t, highlight);
      return;
    }
    if (!firstPage || !matches(t)) return;
    const next = [...tbody.rows].find((tr) => before(t, rows.get(tr.dataset.id).transaction));
    if (!next && hasMore) return;
    add(t, next ?? null, highlight);
  }

  /** The transaction of the row an event happened in, if any. */
  function rowOf(event) {
    const tr = event.target.closest('tr');
    return tr && rows.get(tr.dataset.id)?.transaction;
  }
  tbody.addEventListener('click', (event) => {
    const t = rowOf(event);
    if (t) onOpen(t);
  });
  tbody.addEventListener('keydown', (event) => {
    const t = event.key === 'Enter' ? rowOf(event) : undefined;
    if (t) onOpen(t);
  });

  return {
    /** Shows a page read from the API, with any change newer than what the read saw. */
    show(page, options) {
      rows.clear();
      tbody.replaceChildren();
      firstPage = options.first;
      hasMore = page.has_more;
      for (const t of page.data) add(t, null, false);
      for (const t of recent.values()) merge(t, false);
    },

    /** Takes a change (from the stream or a POST's answer) into the page. */
    change(t) {
      recent.delete(t.id);
      recent.set(t.id, t);
      if (recent.size > RECENT_MAX) recent.delete(recent.keys().next().value);
      merge(t, true);
    },

    /** Empties the table and forgets the changes seen (another account, or signed out). */
    clear() {
      rows.clear();
      recent.clear();
      tbody.replaceChildren();
      firstPage = true;
      hasMore = false;
    },

    size: () => rows.size,
  };
}
