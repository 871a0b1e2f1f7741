// The gateway's API as the viewer calls it: the key in the Authorization header (never in a URL),
// JSON both ways, and answers returned as values rather than thrown.

/** Calls the API as `key`; resolves to {status, ok, json, headers}, json being null for a body that is not JSON. */
export async function call(key, method, path, options = {}) {
  const headers = { Authorization: `Bearer ${key}`, Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
  const response = await fetch(path, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    cache: 'no-store',
    signal: options.signal,
  });
  return answerOf(response);
}

/** A fetch response as an answer: {status, ok, json, headers}. */
export async function answerOf(response) {
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  return { status: response.status, ok: response.ok, json, headers: response.headers };
}

/**
 * What went wrong with an answer, for people: the API's message, the fields at fault, when to retry.
 * Reads the error's fields at the top level or under `error` (`{error: {code, message, details}}`).
 */
export function problem(answer) {
  const json = answer.json ?? {};
  const error = typeof json.error === 'object' && json.error !== null ? json.error : json;
  const message = error.message || `The gateway answered ${answer.status}.`;
  const details = Array.isArray(error.details) ? error.details : [];
  const fields = details.map((detail) => `${detail.field}: ${detail.message}`).join('; ');
  const retry = answer.headers.get('Retry-After');
  return [message, fields, retry ? `Retry in ${retry} s.` : ''].filter(Boolean).join(' ');
}

/** Whether a rejection is an aborted fetch (the account or key changed), which nobody needs to hear of. */
export const isAbort = (error) => Boolean(error) && error.name === 'AbortError';

/** A random UUID (v4) for an Idempotency-Key, from getRandomValues, which unlike randomUUID also works over plain HTTP. */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
