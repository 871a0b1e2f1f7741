import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Gateway } from '../gateway.ts';
import { FAST_BANK } from './support/bank.ts';
import { client, createUser, startTestGateway } from './support/gateway.ts';
import { scaled } from './support/time.ts';
import { CHROMIUM, SKIP_REASON, launchChromium } from './support/browser.ts';

// GET /api/v1/ws from a page in headless Chromium (Debian's package): a browser sends its page's
// Origin and cannot set headers on a WebSocket, so it authenticates with its first message.
const WAIT_MS = scaled(10_000);

// Runs in the page (as source: this project's TypeScript has no DOM types). Opens the socket on the
// page's own origin, sends the key as the first message, and keeps every message and the close.
const OPEN_SOCKET = `(key) => {
  const socket = new WebSocket('ws://' + location.host + '/api/v1/ws');
  window.__socket = { messages: [], closed: null };
  socket.addEventListener('open', () => socket.send(JSON.stringify({ type: 'auth', key })));
  socket.addEventListener('message', (event) => window.__socket.messages.push(JSON.parse(event.data)));
  socket.addEventListener('close', (event) => (window.__socket.closed = { code: event.code, reason: event.reason }));
}`;

let gateway: Gateway | undefined;
let browser: Browser | undefined;
let page: Page;
let request: ReturnType<typeof client>;
let user: { id: string; api_key: string };

before(async () => {
  gateway = await startTestGateway({ ...FAST_BANK });
  request = client(gateway.url);
  user = await createUser(request, 'Socket Person');
  if (!existsSync(CHROMIUM)) return;
  browser = await launchChromium();
  page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
});

after(async () => {
  await browser?.close();
  await gateway?.close();
});

test("a page of the gateway's origin opens the WebSocket with its first message and sees a deposit's changes", async (t) => {
  if (!browser || !gateway) return t.skip(SKIP_REASON);
  // The viewer's page: its Content-Security-Policy (connect-src 'self') has to let the socket through.
  await page.goto(`${gateway.url}/`);
  await page.evaluate(`(${OPEN_SOCKET})(${JSON.stringify(user.api_key)})`);
  await page.waitForFunction(() => (globalThis as any).__socket.messages.length > 0);
  assert.deepEqual(await page.evaluate('window.__socket.messages[0]'), { type: 'subscribed', user_id: user.id });

  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount: 42_424, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  const id = answer.json.id as string;
  await page.waitForFunction(
    (id) =>
      (globalThis as any).__socket.messages.some(
        (message: any) =>
          message.type === 'transaction' && message.data.id === id && message.data.status === 'succeeded',
      ),
    id,
  );

  const messages = await page.evaluate<{ type: string; data?: any }[]>('window.__socket.messages');
  const changes = messages.filter((message) => message.type === 'transaction').map((message) => message.data);
  const shown = await request('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
  let status = 'pending';
  const statuses = (shown.json.events as { status: string | null }[]).map((event) => (status = event.status ?? status));
  assert.deepEqual(
    changes.map((change) => [change.id, change.status]),
    statuses.map((after) => [id, after]),
  );
  assert.equal(changes.at(-1).amount, 42_424);
  assert.equal(await page.evaluate('window.__socket.closed'), null);
});
