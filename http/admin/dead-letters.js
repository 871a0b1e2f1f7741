// Dead letters: payments whose bank calls all failed, newest first, each with a retry that sends a
// fresh Idempotency-Key and shows the gateway's answer (202 retrying, or 409 and why not).

import { newIdempotencyKey } from '/viewer/api.js';
import { $, cell, el, fillTable, fullId, link, say, when } from './dom.js';
import { pager } from './route.js';

const PAGE_LIMIT = 20;

/** The context and route of the view on screen (admin.js makes one context per view). */
let ctx;
let shownRoute;

/** `#/dead-letters?cursor=…`: a page of dead letters. */
export async function showDeadLetters(route, context) {
  ctx = context;
  shownRoute = route;
  say('retry-result', '');
  await loadDeadLetters();
}

async function loadDeadLetters() {
  const route = shownRoute;
  const query = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  if (route.query.get('cursor')) query.set('cursor', route.query.get('cursor'));
  const page = await ctx.read(`/api/v1/admin/dead-letters?${query}`, 'dead-letter-error');
  if (!page) return;
  fillTable('dead-letter-table', page.data.map(letterRow), 'dead-letter-empty');
  pager({ nav: $('dead-letter-pager'), route, page, go: ctx.go });
}

function letterRow(letter) {
  const retry = el('button', {
    type: 'button',
    text: 'Retry',
    disabled: Boolean(letter.retried_at),
    'aria-label': `Retry transaction ${letter.transaction_id}`,
  });
  retry.addEventListener('click', () => void retryLetter(letter, retry));
  return el(
    'tr',
    { dataset: { id: letter.id, transaction: letter.transaction_id } },
    cell(when(letter.created_at)),
    // Both ids in full, one above the other, to keep the table within the page.
    el(
      'td',
      {},
      el('div', {}, link(`#/transactions/${encodeURIComponent(letter.transaction_id)}`, fullId(letter.transaction_id))),
      el(
        'div',
        { class: 'hint' },
        'user ',
        link(`#/users/${encodeURIComponent(letter.user_id)}`, fullId(letter.user_id)),
      ),
    ),
    el(
      'td',
      { class: 'wrap' },
      el('div', { text: letter.reason }),
      el('div', { class: 'hint', text: letter.last_error }),
    ),
    cell(String(letter.attempts), 'number'),
    cell(letter.retried_at ? when(letter.retried_at) : '—', 'retried'),
    cell(retry),
  );
}

/** Asks the gateway to retry one letter, says what it answered, and reads the page again. */
async function retryLetter(letter, button) {
  button.disabled = true;
  say('retry-result', '');
  const idempotencyKey = newIdempotencyKey();
  const answer = await ctx.request('POST', `/api/v1/admin/dead-letters/${encodeURIComponent(letter.id)}/retry`, {
    idempotencyKey,
    errorId: 'dead-letter-error',
  });
  if (!answer) {
    button.disabled = false;
    return;
  }
  const result = $('retry-result');
  result.dataset.status = String(answer.status);
  if (answer.status === 202) {
    say(
      'retry-result',
      `${answer.status} Accepted: transaction ${letter.transaction_id} goes back to the bank (Idempotency-Key ${idempotencyKey}).`,
    );
  } else {
    say('retry-result', `${answer.status}, not retried: ${ctx.explain(answer)}`);
  }
  await loadDeadLetters();
}

$('dead-letters-refresh').addEventListener('click', () => void loadDeadLetters());
