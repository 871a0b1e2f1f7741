// Small DOM helpers for the admin panel. Every string from the API goes in as text, never as markup.

import { formatAmount } from '/viewer/money.js';

export const $ = (id) => document.getElementById(id);

// Short dates, as in the viewer: tables of full ids leave little room.
const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });

/** An instant as people read it in this browser's zone; '—' for none. */
export const when = (iso) => (iso ? TIME_FORMAT.format(new Date(iso)) : '—');

/** An element with attributes (`text` sets its text) and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children);
  return node;
}

/** A table cell holding text or a node. */
export function cell(content, className) {
  return el('td', { class: className }, content ?? '');
}

/** An id in full, in a monospace face, selected whole by one click so it can be copied. */
export const fullId = (id) => el('code', { class: 'id', text: id });

/** A link inside the panel (a hash route), so that it works with the keyboard and opens in a new tab. */
export const link = (hash, content) => el('a', { href: hash }, content);

/** An amount of minor units in its currency's digits, e.g. 42424 USD → "424.24". */
export const money = (minor, currency) => formatAmount(minor, currency);

/** A transaction's status as a coloured word. */
export const statusBadge = (status) => el('span', { class: 'status', dataset: { status }, text: status });

/** Shows `text` in the element with id `id`, hiding it when empty. */
export function say(id, text) {
  const node = $(id);
  node.textContent = text ?? '';
  node.hidden = !text;
}

/** Replaces a table's body rows, and shows its "nothing here" line when there are none. */
export function fillTable(tableId, rows, emptyId) {
  $(tableId).tBodies[0].replaceChildren(...rows);
  if (emptyId) $(emptyId).hidden = rows.length > 0;
}

/**
 * A secret shown once (a new API key): the key selectable as a whole, a button that copies it, and
 * a line saying it will not be shown again. Placed in `containerId`, replacing what was there.
 */
export function showSecret(containerId, heading, key) {
  const code = el('code', { class: 'id secret-key', text: key });
  const copied = el('span', { class: 'hint', role: 'status' });
  const copy = el('button', { type: 'button', class: 'primary', text: 'Copy' });
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(key);
      copied.textContent = 'Copied.';
    } catch {
      // No clipboard (an insecure origin, or refused): select the key so that Ctrl+C copies it.
      getSelection().selectAllChildren(code);
      copied.textContent = 'Selected: press Ctrl+C to copy.';
    }
  });
  const container = $(containerId);
  container.replaceChildren(
    el('p', { text: heading }),
    el('div', { class: 'row' }, code, copy, copied),
    el('p', { class: 'hint', text: 'Shown this once: the gateway keeps only its digest. Copy it now.' }),
  );
  container.hidden = false;
}

/** Removes a secret from the page (on leaving the view it was shown in). */
export function hideSecret(containerId) {
  $(containerId).replaceChildren();
  $(containerId).hidden = true;
}
