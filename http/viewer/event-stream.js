// GET /api/v1/events read with fetch() rather than EventSource: EventSource cannot send the
// Authorization header, and a key in the URL would end up in logs and browser history. This parses
// the text/event-stream format itself and reconnects with backoff.

// Bounds: the unparsed text held, the silence after which a stream counts as dead (the server sends
// a heartbeat every 15 s), and the reconnection backoff.
const BUFFER_MAX_CHARS = 1_000_000;
const SILENCE_MAX_MS = 45_000;
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;

/**
 * Keeps the stream open until `signal` aborts. Calls `onState` with 'connecting', 'live' or
 * 'reconnecting'; `onOpen` after each (re)connection, once subscribed (read the account then, so no
 * change falls between the read and the stream); `onTransaction` for each change; and `onRefused`
 * with the answer when the gateway refuses for good (401, 400, 404), after which it stops.
 */
export async function followEvents({ key, query, signal, onState, onOpen, onTransaction, onRefused }) {
  let delay = RECONNECT_MIN_MS;
  while (!signal.aborted) {
    onState('connecting');
    const connection = new AbortController();
    const stop = () => connection.abort();
    signal.addEventListener('abort', stop);
    try {
      const response = await fetch(`/api/v1/events${query}`, {
        headers: { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: connection.signal,
      });
      if ([400, 401, 404].includes(response.status)) {
        await onRefused(response);
        return;
      }
      if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`);
      onState('live');
      delay = RECONNECT_MIN_MS;
      onOpen();
      await readEvents(response.body, connection, onTransaction);
    } catch (error) {
      if (error.name !== 'AbortError') console.warn('event stream:', error);
    } finally {
      signal.removeEventListener('abort', stop);
    }
    if (signal.aborted) return;
    onState('reconnecting');
    await sleep(delay / 2 + Math.random() * (delay / 2), signal);
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
}

/** Reads blank-line-separated events from the body until it ends, goes silent too long, or overflows. */
async function readEvents(body, connection, onTransaction) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let silence = setTimeout(() => connection.abort(), SILENCE_MAX_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      clearTimeout(silence);
      silence = setTimeout(() => connection.abort(), SILENCE_MAX_MS);
      buffer = (buffer + value).replace(/\r\n/g, '\n');
      if (buffer.length > BUFFER_MAX_CHARS) throw new Error('an event larger than the buffer');
      let end;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event.name === 'transaction' && event.data !== undefined) onTransaction(JSON.parse(event.data));
      }
    }
  } finally {
    clearTimeout(silence);
  }
}

/** One event's fields: comments (":…") are skipped, and several data lines join with newlines. */
function parseEvent(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  return { name, data: data.length > 0 ? data.join('\n') : undefined };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
