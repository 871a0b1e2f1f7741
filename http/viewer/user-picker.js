// The admin's way to an account: search users by name, email or id (GET /api/v1/users?search=)
// as they type, and pick one from the matches. A whole user id is taken as it is.

import { isAbort, problem } from './api.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Typing pauses this long before a search goes out, so that a name typed quickly costs one request.
const TYPING_PAUSE_MS = 250;
const SEARCH_MIN_CHARS = 2;
const MATCHES_MAX = 10;

/**
 * Wires the picker made of `elements` (form, input, matches list, status line). `api` calls the
 * gateway; `onPick(user)` receives the chosen user ({id} alone when a whole id was typed in).
 */
export function createUserPicker({ elements, api, onPick }) {
  const { form, input, matches, status } = elements;
  let timer = null;
  /** Aborts the search in flight when a newer one starts. */
  let searching = null;

  function pick(user) {
    matches.replaceChildren();
    status.textContent = '';
    onPick(user);
  }

  function matchItem(user) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.id = user.id;
    const name = document.createElement('strong');
    name.textContent = user.name;
    const id = document.createElement('code');
    id.textContent = user.id;
    button.append(name, ` ${user.email}${user.revoked_at ? ' (revoked)' : ''} `, id);
    button.addEventListener('click', () => pick(user));
    const li = document.createElement('li');
    li.append(button);
    return li;
  }

  /** Searches for `text`; resolves to the users found, or null when the search failed or was overtaken. */
  async function search(text) {
    searching?.abort();
    const controller = new AbortController();
    searching = controller;
    status.textContent = 'Searching…';
    const query = new URLSearchParams({ search: text, limit: String(MATCHES_MAX) });
    let answer;
    try {
      answer = await api('GET', `/api/v1/users?${query}`, { signal: controller.signal });
    } catch (error) {
      if (!isAbort(error)) status.textContent = 'The gateway cannot be reached.';
      return null;
    }
    if (controller.signal.aborted) return null;
    if (!answer.ok) {
      matches.replaceChildren();
      status.textContent = problem(answer);
      return null;
    }
    const users = answer.json.data;
    matches.replaceChildren(...users.map(matchItem));
    status.textContent =
      users.length === 0
        ? 'No user matches.'
        : `${users.length} user${users.length === 1 ? '' : 's'} found${answer.json.has_more ? '; type more to narrow them down' : ''}.`;
    return users;
  }

  input.addEventListener('input', () => {
    clearTimeout(timer);
    const text = input.value.trim();
    if (text.length < SEARCH_MIN_CHARS) {
      searching?.abort();
      matches.replaceChildren();
      status.textContent = '';
      return;
    }
    timer = setTimeout(() => void search(text), TYPING_PAUSE_MS);
  });

  // Enter: a whole id opens that account at once; other text is searched now, and a single match opened.
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearTimeout(timer);
    const text = input.value.trim();
    if (UUID.test(text)) {
      searching?.abort();
      pick({ id: text.toLowerCase() });
      return;
    }
    const users = await search(text);
    if (users?.length === 1) pick(users[0]);
  });

  return {
    /** Empties the picker (signed out). */
    clear() {
      searching?.abort();
      clearTimeout(timer);
      input.value = '';
      matches.replaceChildren();
      status.textContent = '';
    },
  };
}
