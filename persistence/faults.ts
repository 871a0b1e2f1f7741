/**
 * Whether an error thrown by a storage call means "the dependency is unavailable right now" (retry
 * later) rather than a bug: a lost or refused connection, a server shutting down or out of
 * connections, a statement or lock cancelled by a timeout. The edge answers these 503 with
 * Retry-After; anything else stays a 500, because only a bug produces it.
 */
export function isStorageFault(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, name } = error as { code?: unknown; name?: unknown };
  if (typeof code === 'string') {
    if (DRIVER_CODES.has(code) || NETWORK_CODES.has(code)) return true;
    // SQLSTATE: connection exceptions (08…), operator intervention (57…: admin shutdown, cannot
    // connect now, statement cancelled), insufficient resources (53…: too many connections).
    if (/^(08|57|53)[0-9A-Z]{3}$/.test(code)) return true;
    // An idle transaction ended by idle_in_transaction_session_timeout.
    if (code === '25P03') return true;
  }
  // ioredis: a command refused while the connection is down or after its retries ran out.
  if (name === 'MaxRetriesPerRequestError') return true;
  return error instanceof Error && /^Connection is closed\.?$/.test(error.message);
}

/** postgres.js's own connection errors. */
const DRIVER_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT']);

/** Node's socket errors, as a driver passes them on. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
