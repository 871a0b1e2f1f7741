// A form that creates a deposit or a withdrawal: the amount typed in major units and converted
// exactly (money.js), the currency, an optional description, and an Idempotency-Key that belongs to
// one submission, so that sending the same one again after a lost answer cannot pay twice.

import { newIdempotencyKey, problem } from './api.js';
import { formatMoney, parseAmount } from './money.js';

const PATHS = { deposit: '/api/v1/deposits', withdrawal: '/api/v1/withdrawals' };
const NAMES = { deposit: 'Deposit', withdrawal: 'Withdrawal' };

/**
 * Whether an answer settles its key for good, so that the next submission needs a new one. A 5xx,
 * 408, 409 (the first is still running) or 429 leaves the outcome open: the same key retries it safely.
 */
function final(status) {
  return status < 500 && ![408, 409, 429].includes(status);
}

/**
 * Wires the form of `type` ('deposit' or 'withdrawal'). `elements` holds its form, amount, currency,
 * description, key, result and error elements; `api(method, path, options)` calls the gateway;
 * `target()` says whose account it acts on ({userId, admin}, or null before the admin chooses);
 * `onCreated(transaction)` receives each transaction the gateway accepted.
 */
export function createPaymentForm({ type, elements, api, target, onCreated }) {
  const { form, amount, currency, description, key, result, error } = elements;
  const button = form.querySelector('button[type=submit]');
  /** The key of the submission the fields describe, and those fields (with the account) as one string. */
  let pending = { key: null, fingerprint: null };

  /** The key for what the form holds now: kept while account, amount, currency and description stay the same. */
  function currentKey() {
    const who = target();
    const fingerprint = JSON.stringify([who?.userId, amount.value.trim(), currency.value, description.value.trim()]);
    if (pending.fingerprint !== fingerprint) pending = { key: newIdempotencyKey(), fingerprint };
    return pending.key;
  }

  function showKey() {
    key.textContent = currentKey();
  }

  async function submit() {
    result.textContent = '';
    const who = target();
    if (!who) {
      error.textContent = 'Find a user first: the admin acts for the user shown.';
      return;
    }
    const parsed = parseAmount(amount.value, currency.value);
    error.textContent = parsed.error ?? '';
    if (parsed.error) return;
    const body = { amount: parsed.minor, currency: currency.value };
    if (description.value.trim()) body.description = description.value.trim();
    if (who.admin) body.user_id = who.userId;
    const idempotencyKey = currentKey();
    button.disabled = true;
    try {
      const answer = await api('POST', PATHS[type], { body, idempotencyKey });
      if (answer.status === 202) {
        const t = answer.json;
        const replayed = answer.headers.get('Idempotent-Replayed') === 'true' ? ' (a replay: it existed already)' : '';
        result.textContent = `${NAMES[type]} ${t.id} created: ${formatMoney(t.amount, t.currency)}${replayed}.`;
        pending = { key: null, fingerprint: null };
        onCreated(t);
      } else {
        error.textContent = problem(answer);
        if (final(answer.status)) pending = { key: null, fingerprint: null };
      }
    } catch {
      error.textContent = 'No answer from the gateway. Submit again to retry safely with the same key.';
    } finally {
      button.disabled = false;
      showKey();
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void submit();
  });
  for (const field of [amount, description]) field.addEventListener('input', showKey);
  currency.addEventListener('change', showKey);

  return {
    /** Shows the key again, after something the key depends on changed (the account, the currencies). */
    refresh: showKey,
    /** Forgets the messages of another account's submissions. */
    clear() {
      result.textContent = '';
      error.textContent = '';
      showKey();
    },
  };
}
