import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Gateway } from '../gateway.ts';
import { FAST_BANK } from './support/bank.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { eventually, scaled } from './support/time.ts';
import { CHROMIUM, SCREENSHOTS, SKIP_REASON, launchChromium } from './support/browser.ts';
import { startReceiver } from './support/webhook-receiver.ts';

// The admin panel at /admin in headless Chromium (Debian's package), against a gateway whose
// in-process bank refuses every transfer (503), so that payments really end as dead letters after
// BANK_ATTEMPTS_MAX (3) attempts, and whose key cache trusts a key for a short while only. Its merchant
// webhooks retry within milliseconds, give up after 3 attempts, and disable an endpoint after 3 failures
// in a row, so that a receiver answering 500 has a failed delivery and a disabled endpoint at once.
const WAIT_MS = scaled(10_000);
const AUTH_CACHE_TTL_MS = 300;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Every file the page is made of, as served under /admin/. */
const FILES = [
  'admin.css',
  'admin.js',
  'dom.js',
  'route.js',
  'users.js',
  'transactions.js',
  'dead-letters.js',
  'reconciliation.js',
  'shards.js',
  'webhooks.js',
];

type User = { id: string; api_key: string; name: string; email: string };

let gateway: Gateway | undefined;
let browser: Browser | undefined;
let page: Page;
let request: ReturnType<typeof client>;
/** A user with a declined deposit and a dead-lettered one; Grace has a dozen deposits to page through. */
let ada: User;
let grace: User;
let declinedId: string;
let deadId: string;
let graceIds: string[];
const scriptErrors: string[] = [];
/** A merchant's endpoint in this process, for the webhooks' test. */
let receiver: Awaited<ReturnType<typeof startReceiver>> | undefined;

async function deposit(user: User, amount: number): Promise<string> {
  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  return answer.json.id as string;
}

/** The dead letters of a transaction, newest first, as the API lists them. */
async function lettersOf(transaction_id: string): Promise<{ id: string; retried_at: string | null }[]> {
  const page = await request('GET', '/api/v1/admin/dead-letters?limit=100', { key: ADMIN_KEY });
  return page.json.data.filter((letter: { transaction_id: string }) => letter.transaction_id === transaction_id);
}

before(async () => {
  gateway = await startTestGateway({
    ...FAST_BANK,
    BANK_TIMEOUT_MS: String(scaled(1000)),
    BANK_UNAVAILABLE_RATE: '1',
    AUTH_CACHE_TTL_MS: String(AUTH_CACHE_TTL_MS),
    MERCHANT_WEBHOOKS_ALLOW_PRIVATE: 'true',
    MERCHANT_WEBHOOKS_POLL_MS: '25',
    MERCHANT_WEBHOOKS_RETRY_BASE_MS: '40',
    MERCHANT_WEBHOOKS_RETRY_MAX_MS: '160',
    MERCHANT_WEBHOOKS_ATTEMPTS_MAX: '3',
    MERCHANT_WEBHOOKS_DISABLE_AFTER_FAILURES: '3',
    MERCHANT_WEBHOOKS_TIMEOUT_MS: String(scaled(2000)),
  });
  request = client(gateway.url);
  ada = (await createUser(request, 'Ada Lovelace')) as User;
  grace = (await createUser(request, 'Grace Hopper')) as User;
  // The simulator declines this amount whatever its rates: a failed deposit with the bank's reason.
  // It goes first, while no refused transfer has opened the circuit breaker yet.
  declinedId = await deposit(ada, 666_66);
  await eventually(async () => {
    const shown = await request('GET', `/api/v1/deposits/${declinedId}`, { key: ada.api_key });
    return shown.json.status === 'failed' ? true : undefined;
  });
  deadId = await deposit(ada, 12_34);
  graceIds = [];
  for (let i = 1; i <= 11; i += 1) graceIds.push(await deposit(grace, i * 100));
  await eventually(async () => ((await lettersOf(deadId)).length > 0 ? true : undefined));
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gateway.url });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  page.on('console', (message) => {
    // The browser asks for /favicon.ico on its own; the gateway has none (a 404 that harms nothing).
    // The 401 (a wrong key) and 409s (a taken email, a third key, a letter already retried) are
    // answers the tests provoke, which the browser logs as failed loads.
    const expected = /status of (401|409) \((Unauthorized|Conflict)\)$/.test(message.text());
    if (message.type() === 'error' && !expected && !message.location().url.endsWith('/favicon.ico')) {
      scriptErrors.push(message.text());
    }
  });
});

after(async () => {
  await browser?.close();
  await gateway?.close();
  await receiver?.close();
});

/** Skips the test when there is no browser; true when it may run. */
function ready(t: TestContext): boolean {
  if (browser && gateway) return true;
  t.skip(SKIP_REASON);
  return false;
}

const shot = (name: string) => page.screenshot({ path: `${SCREENSHOTS}admin-${name}.png`, fullPage: true });
const hash = () => new URL(page.url()).hash;

/** Waits until a table shows exactly these rows, in this order. */
async function rowsBecome(table: string, ids: readonly string[]): Promise<void> {
  await page.waitForFunction(
    ([id, expected]) => {
      const rows: any[] = [...(globalThis as any).document.querySelectorAll(`#${id} tbody tr`)];
      return rows.map((row) => row.dataset.id).join() === expected;
    },
    [table, ids.join()] as const,
  );
}

/** Follows a link of the left nav with the keyboard, as someone without a mouse would. */
async function openSection(section: string): Promise<void> {
  await page.focus(`nav a[data-section="${section}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`[data-view="${section}"]:not([hidden])`);
}

describe('the admin panel, served', () => {
  test('GET /admin and its files: the page’s security headers, their types, nothing inline or from elsewhere', async () => {
    const served = await request('GET', '/admin');
    assert.equal(served.status, 200);
    assert.match(served.headers.get('content-type') ?? '', /^text\/html/);
    const policy = served.headers.get('content-security-policy') ?? '';
    assert.match(policy, /default-src 'self'/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.equal(served.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(served.headers.get('x-frame-options'), 'DENY');
    assert.equal(served.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(served.headers.get('cache-control'), 'no-cache');
    const linked = [...served.text.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual(linked, ['/viewer/base.css', '/admin/admin.css', '/admin/admin.js']);
    assert.doesNotMatch(served.text, /<style|\sstyle=|<script(?![^>]*\ssrc=)|\son[a-z]+=/i);

    const sources = [served.text];
    const imported = new Set<string>();
    for (const file of FILES) {
      const asset = await request('GET', `/admin/${file}`);
      assert.equal(asset.status, 200, file);
      assert.match(asset.headers.get('content-type') ?? '', file.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
      assert.equal(asset.headers.get('x-content-type-options'), 'nosniff', file);
      sources.push(asset.text);
      for (const [, path] of asset.text.matchAll(/^import .* from '([^']+)';$/gm)) {
        imported.add(path!.startsWith('./') ? `/admin/${path!.slice(2)}` : path!);
      }
    }
    // One formatter of money, the viewer's: imported from where the viewer serves it, not copied.
    assert.ok(imported.has('/viewer/money.js'));
    for (const path of imported) assert.equal((await request('GET', path)).status, 200, path);
    for (const source of sources) {
      assert.doesNotMatch(source, /https?:\/\/|innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(/);
      assert.doesNotMatch(source, /api_key=|localStorage/, 'the key travels in the Authorization header only');
    }
    for (const path of ['/admin/nope.js', '/admin/index.html', '/admin/..%2Fgateway.ts', '/admin/%2e%2e%2fedge.ts']) {
      const missing = await request('GET', path);
      assert.equal(missing.status, 404, path);
      assert.equal(missing.headers.get('x-content-type-options'), 'nosniff', path);
    }
  });
});

describe('the admin panel in a browser', () => {
  test('the admin key opens it; a wrong key or a user’s key is refused in words', async (t) => {
    if (!ready(t)) return;
    await page.goto(`${gateway!.url}/admin`);
    await shot('0-signin');
    for (const [key, words] of [
      [`${ADMIN_KEY}-wrong`, 'This key is not valid.'],
      [ada.api_key, 'This key belongs to a user, not to the admin.'],
    ] as const) {
      await page.fill('#key', key);
      await page.press('#key', 'Enter');
      await page.waitForSelector(`#key-error:has-text("${words}")`);
      assert.equal(await page.isVisible('#app'), false);
    }
    await page.fill('#key', ADMIN_KEY);
    await page.press('#key', 'Enter');
    await page.waitForSelector('#users:not([hidden])');
    assert.equal(new URL(page.url()).search, '', 'the key must not travel in the URL');
    assert.equal(await page.getAttribute('nav a[data-section="users"]', 'aria-current'), 'page');
  });

  test('creates a user: the key shown once with a copy button, and it works; a taken email is refused in words', async (t) => {
    if (!ready(t)) return;
    const email = `katherine-${crypto.randomUUID()}@example.test`;
    await page.fill('#user-create-name', 'Katherine Johnson');
    await page.fill('#user-create-email', email);
    await page.click('#user-create button[type="submit"]');
    const key = (await (await page.waitForSelector('#user-create-result .secret-key')).textContent()) ?? '';
    assert.match(key, /^pgw_/);
    await page.click('#user-create-result button:has-text("Copy")');
    await page.waitForSelector('#user-create-result [role="status"]:has-text("Copied.")');
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), key);
    const me = await request('GET', '/api/v1/me', { key });
    assert.deepEqual([me.status, me.json.name, me.json.email], [200, 'Katherine Johnson', email]);
    await page.waitForSelector(`#user-table tr[data-id="${me.json.id}"]`);
    await shot('1-user-created');

    await page.fill('#user-create-name', 'Someone Else');
    await page.fill('#user-create-email', email);
    await page.click('#user-create button[type="submit"]');
    await page.waitForSelector('#user-create-error:has-text("A user with this email already exists.")');
    assert.equal(await page.isVisible('#user-create-result'), false, 'the key is gone from the page');
  });

  test('finds a user by email and opens them: fields, balance in the currency’s digits, keys, transactions', async (t) => {
    if (!ready(t)) return;
    await page.fill('#user-search-text', ada.email);
    await page.press('#user-search-text', 'Enter');
    await rowsBecome('user-table', [ada.id]);
    assert.equal(hash(), `#/users?${new URLSearchParams({ search: ada.email }).toString()}`);
    const row = `#user-table tr[data-id="${ada.id}"]`;
    assert.match((await page.textContent(row)) ?? '', new RegExp(`Ada Lovelace.*${ada.email}`));
    assert.equal(await page.textContent(`${row} code.id`), ada.id, 'the full id, to select and copy');
    await shot('2-users-found');

    await page.click(`${row} a`);
    await page.waitForSelector('#user-title:has-text("Ada Lovelace")');
    assert.equal(hash(), `#/users/${ada.id}`);
    await page.waitForSelector('#user-balance tr[data-currency="USD"]');
    assert.equal(await page.textContent('#user-balance tr[data-currency="USD"] .available'), '0.00');
    assert.equal(await page.textContent('#user-balance tr[data-currency="USD"] .held'), '0.00');
    await page.waitForSelector('#key-table tr[data-state="active"]');
    await rowsBecome('user-transactions', [deadId, declinedId]);
    assert.match((await page.textContent(`#user-transactions tr[data-id="${declinedId}"]`)) ?? '', /666\.66.*failed/);
    await shot('3-user');
  });

  test('opens a transaction: every field, the failure reason, the audit trail in order; back and reload keep the place', async (t) => {
    if (!ready(t)) return;
    await page.click(`#user-transactions tr[data-id="${declinedId}"] a`);
    await page.waitForSelector('#transaction-title:has-text("Deposit of 666.66 USD")');
    const shown = await request('GET', `/api/v1/deposits/${declinedId}`, { key: ADMIN_KEY });
    assert.match((await page.textContent('#transaction-failure')) ?? '', /Failed: .*\(code declined\)/);
    assert.equal(await page.textContent('[data-field="amount"]'), '666.66 USD (66666 minor units)');
    assert.equal(await page.textContent('[data-field="id"]'), declinedId);
    const fields = await page.$$eval('#transaction-fields dd', (dds) => dds.map((dd) => dd.getAttribute('data-field')));
    assert.deepEqual(
      fields,
      Object.keys(shown.json).filter((name) => name !== 'events'),
    );
    const trail = await page.$$eval('#audit-trail tbody tr', (rows) =>
      rows.map((row) => row.getAttribute('data-type')),
    );
    assert.deepEqual(
      trail,
      shown.json.events.map((event: { type: string }) => event.type),
    );
    assert.equal(trail.at(-1), 'transaction_failed');
    await shot('4-transaction');

    const here = page.url();
    await page.reload();
    await page.waitForSelector('#transaction-title:has-text("Deposit of 666.66 USD")');
    assert.equal(page.url(), here);
    await page.goBack();
    await page.waitForSelector('#user-title:has-text("Ada Lovelace")');
    assert.equal(hash(), `#/users/${ada.id}`);
    await page.goForward();
    await page.waitForSelector('#transaction-title:has-text("Deposit of 666.66 USD")');
  });

  test('transactions across users: filters in words and keyset pages, next and previous', async (t) => {
    if (!ready(t)) return;
    await openSection('transactions');
    assert.equal(await page.evaluate('document.activeElement.tagName'), 'H2', 'focus moves to the section');
    const history = await request('GET', `/api/v1/users/${grace.id}/transactions?limit=100`, { key: ADMIN_KEY });
    const all = (history.json.data as { id: string }[]).map((transaction) => transaction.id);
    assert.deepEqual([...all].sort(), [...graceIds].sort());

    await page.fill('#transaction-filters [name="user_id"]', grace.id);
    await page.selectOption('#transaction-filters [name="limit"]', '10');
    await page.click('#transaction-filters button[type="submit"]');
    await rowsBecome('transaction-table', all.slice(0, 10));
    assert.equal(await page.textContent('#transaction-pager [data-page="label"]'), 'Page 1');
    assert.equal(await page.isEnabled('#transaction-pager [data-page="previous"]'), false);

    const next = page.waitForRequest((sent) => /\/api\/v1\/transactions\?.*cursor=/.test(sent.url()));
    await page.click('#transaction-pager [data-page="next"]');
    await next;
    await rowsBecome('transaction-table', all.slice(10));
    assert.equal(await page.textContent('#transaction-pager [data-page="label"]'), 'Page 2');
    assert.equal(await page.isEnabled('#transaction-pager [data-page="next"]'), false);
    await page.reload();
    await rowsBecome('transaction-table', all.slice(10));
    assert.equal(await page.textContent('#transaction-pager [data-page="label"]'), 'Page 2');
    await page.click('#transaction-pager [data-page="previous"]');
    await rowsBecome('transaction-table', all.slice(0, 10));
    assert.equal(await page.textContent('#transaction-pager [data-page="label"]'), 'Page 1');
    await shot('5-transactions');

    await page.click('#transaction-filters button[type="reset"]');
    await page.fill('#transaction-filters [name="user_id"]', ada.id);
    await page.selectOption('#transaction-filters [name="status"]', 'failed');
    await page.click('#transaction-filters button[type="submit"]');
    await rowsBecome('transaction-table', [declinedId]);
    await page.selectOption('#transaction-filters [name="status"]', '');
    await page.fill('#transaction-filters [name="min"]', '600.00');
    await page.click('#transaction-filters button[type="submit"]');
    await page.waitForSelector('#transaction-filter-error:has-text("Choose a currency")');
    await page.fill('#transaction-filters [name="currency"]', 'USD');
    const filtered = page.waitForRequest((sent) => sent.url().includes('min_amount=60000'));
    await page.click('#transaction-filters button[type="submit"]');
    await filtered;
    await rowsBecome('transaction-table', [declinedId]);
    await page.fill('#transaction-filters [name="min"]', '');
    await page.fill('#transaction-filters [name="max"]', '12.34');
    await page.click('#transaction-filters button[type="submit"]');
    await rowsBecome('transaction-table', [deadId]);
    const today = new Date().toLocaleDateString('en-CA');
    await page.fill('#transaction-filters [name="max"]', '');
    await page.fill('#transaction-filters [name="to"]', '2001-01-01');
    await page.click('#transaction-filters button[type="submit"]');
    await rowsBecome('transaction-table', []);
    assert.equal(await page.isVisible('#transaction-empty'), true);
    await page.fill('#transaction-filters [name="to"]', today);
    await page.fill('#transaction-filters [name="from"]', today);
    await page.click('#transaction-filters button[type="submit"]');
    await rowsBecome('transaction-table', [deadId, declinedId]);
  });

  test('rotates a key: the new key, shown once, works; the old one gets 401 once the cache TTL has passed', async (t) => {
    if (!ready(t)) return;
    const keys = await request('GET', `/api/v1/users/${ada.id}/api-keys`, { key: ADMIN_KEY });
    assert.equal(keys.status, 200, keys.text);
    const [old] = keys.json.data.filter((key: { revoked_at: string | null }) => key.revoked_at === null);
    assert.ok(old);
    assert.equal((await request('GET', '/api/v1/me', { key: ada.api_key })).status, 200, 'the old key works before');

    await page.click(`nav a[data-section="users"]`);
    await page.fill('#user-search-text', ada.id);
    await page.press('#user-search-text', 'Enter');
    await rowsBecome('user-table', [ada.id]);
    await page.click(`#user-table tr[data-id="${ada.id}"] a`);
    const row = `#key-table tr[data-id="${old.id}"]`;
    await page.waitForSelector(`${row}[data-state="active"]`);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click(`${row} button:has-text("Rotate")`);
    const secret = await page.waitForSelector('#key-secret .secret-key');
    const fresh = (await secret.textContent()) ?? '';
    assert.match(fresh, /^pgw_/);
    await page.waitForSelector(`${row}[data-state="revoked"]`);
    assert.equal(await page.$$eval('#key-table tr[data-state="active"]', (rows) => rows.length), 1);
    await shot('6-key-rotated');

    const me = await request('GET', '/api/v1/me', { key: fresh });
    assert.deepEqual([me.status, me.json.id], [200, ada.id]);
    await eventually(async () => {
      const answer = await request('GET', '/api/v1/me', { key: ada.api_key });
      return answer.status === 401 ? true : undefined;
    });

    // A second key, then a rotation past the two active keys a user may hold: refused in words, and
    // nothing revoked.
    await page.fill('#key-add-label', 'second device');
    await page.click('#key-add button[type="submit"]');
    await page.waitForSelector('#key-secret:has-text("second device")');
    await page.waitForFunction(
      () => (globalThis as any).document.querySelectorAll('#key-table tr[data-state="active"]').length === 2,
    );
    const active = `#key-table tr[data-state="active"]:not(:has-text("second device"))`;
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click(`${active} button:has-text("Rotate")`);
    await page.waitForSelector('#key-action-error:not(:empty)');
    assert.match((await page.textContent('#key-action-error')) ?? '', /\(request [^)]+\)$/);
    assert.equal(await page.isVisible('#key-secret'), false);
    assert.equal(await page.$$eval('#key-table tr[data-state="active"]', (rows) => rows.length), 2);
    assert.equal((await request('GET', '/api/v1/me', { key: fresh })).status, 200);

    // Shown once: leaving the user and coming back shows the keys, not the secret.
    await page.goBack();
    await page.waitForSelector('#users:not([hidden])');
    await page.goForward();
    await page.waitForSelector(`${row}[data-state="revoked"]`);
    assert.equal(await page.isVisible('#key-secret'), false);
    assert.doesNotMatch((await page.textContent('body')) ?? '', new RegExp(fresh));
  });

  test('retries a dead letter: 202 with a fresh Idempotency-Key; a letter retried meanwhile answers 409 in words', async (t) => {
    if (!ready(t)) return;
    const [letter] = await lettersOf(deadId);
    await openSection('dead-letters');
    const row = `#dead-letter-table tr[data-id="${letter!.id}"]`;
    await page.waitForSelector(row);
    const sent = page.waitForRequest((retry) => retry.url().endsWith(`/dead-letters/${letter!.id}/retry`));
    await page.click(`${row} button:has-text("Retry")`);
    const firstKey = (await sent).headers()['idempotency-key'];
    assert.match(firstKey ?? '', UUID);
    await page.waitForSelector('#retry-result[data-status="202"]');
    assert.match((await page.textContent('#retry-result')) ?? '', new RegExp(`^202 Accepted: transaction ${deadId}`));
    await page.waitForSelector(`${row} button:disabled`);
    assert.notEqual(await page.textContent(`${row} .retried`), '—');
    await shot('7-dead-letter-retried');

    // The bank still refuses it: after three more attempts, a new letter. Another admin retries it
    // while this page shows it as open; this page's retry then gets the gateway's 409.
    const second = await eventually(async () => (await lettersOf(deadId)).find((found) => found.id !== letter!.id));
    await page.click('#dead-letters-refresh');
    await page.waitForSelector(`#dead-letter-table tr[data-id="${second.id}"] button:enabled`);
    const elsewhere = await request('POST', `/api/v1/admin/dead-letters/${second.id}/retry`, {
      key: ADMIN_KEY,
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(elsewhere.status, 202, elsewhere.text);
    const again = page.waitForRequest((retry) => retry.url().endsWith(`/dead-letters/${second.id}/retry`));
    await page.click(`#dead-letter-table tr[data-id="${second.id}"] button:has-text("Retry")`);
    const secondKey = (await again).headers()['idempotency-key'];
    assert.match(secondKey ?? '', UUID);
    assert.notEqual(secondKey, firstKey);
    await page.waitForSelector('#retry-result[data-status="409"]');
    assert.match(
      (await page.textContent('#retry-result')) ?? '',
      /^409, not retried: This dead letter was already retried\. \(request [^)]+\)$/,
    );
    await shot('8-dead-letter-409');

    // The admin's retries are in the transaction's audit trail.
    await page.click(`${row} a[href^="#/transactions/"]`);
    await page.waitForSelector(`#audit-trail tr[data-type="retry_requested"]`);
    const causes = await page.$$eval('#audit-trail tr[data-type="retry_requested"] td:nth-child(5)', (cells) =>
      cells.map((cell) => cell.textContent),
    );
    assert.deepEqual(causes, ['admin', 'admin']);
  });

  test('runs reconciliation and sees "ok"', async (t) => {
    if (!ready(t)) return;
    await openSection('reconciliation');
    assert.equal(await page.isVisible('#reconciliation-result'), false, 'nothing runs until asked');
    await page.click('#reconcile');
    await page.waitForSelector('#reconciliation-result[data-ok="true"]');
    assert.match((await page.textContent('#reconciliation-result')) ?? '', /^ok: \d+ users and \d+ events checked/);
    assert.equal(await page.isVisible('#discrepancy-table'), false);
    await shot('9-reconciliation');
  });

  test('the shard table: every shard, its owner, epoch and lease', async (t) => {
    if (!ready(t)) return;
    const table = await request('GET', '/api/v1/admin/shards', { key: ADMIN_KEY });
    await openSection('shards');
    await page.waitForSelector('#shard-table tr[data-shard="63"]');
    assert.equal(await page.$$eval('#shard-table tbody tr', (rows) => rows.length), table.json.shards.length);
    const first = await page.$$eval('#shard-table tr[data-shard="0"] td', (cells) => cells.map((c) => c.textContent));
    assert.equal(first[1], table.json.shards[0].owner);
    assert.equal(first[2], table.json.shards[0].epoch);
    assert.notEqual(first[3], '—', 'a held lease has an expiry');
    assert.equal(await page.textContent('#instance-table tbody tr td'), table.json.instances[0].id);
    await shot('10-shards');
  });

  test('webhooks: a failing endpoint disabled in words, its failed delivery’s attempts, Enable, then Redeliver succeeds', async (t) => {
    if (!ready(t)) return;
    receiver = await startReceiver(() => 500);
    const margaret = (await createUser(request, 'Margaret Hamilton')) as User;
    const registered = await request('POST', '/api/v1/webhook-endpoints', {
      key: ADMIN_KEY,
      body: { url: receiver.url, event_types: ['*'], description: 'Order fulfilment', user_id: margaret.id },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(registered.status, 201, registered.text);
    const endpointId = registered.json.id as string;
    const depositId = await deposit(margaret, 42_424);
    // The deposit's first event fails three times (500): the delivery fails and the endpoint is disabled.
    const failed = await eventually(async () => {
      const log = await request('GET', `/api/v1/webhook-deliveries?endpoint_id=${endpointId}&status=failed`, {
        key: ADMIN_KEY,
      });
      const endpoint = await request('GET', `/api/v1/webhook-endpoints/${endpointId}`, { key: ADMIN_KEY });
      return log.json.data.length > 0 && !endpoint.json.enabled ? log.json.data[0] : undefined;
    });
    assert.deepEqual(
      [failed.event_type, failed.transaction_id, failed.attempts.length],
      ['deposit.pending', depositId, 3],
    );

    // The endpoints across users, filtered by the user: disabled, with the reason.
    await openSection('webhooks');
    await page.fill('#endpoint-filters [name="user_id"]', margaret.id);
    await page.press('#endpoint-filters [name="user_id"]', 'Enter');
    await rowsBecome('endpoint-table', [endpointId]);
    assert.equal(hash(), `#/webhooks?user_id=${margaret.id}`);
    const endpointRow = `#endpoint-table tr[data-id="${endpointId}"]`;
    assert.equal(await page.getAttribute(endpointRow, 'data-state'), 'disabled');
    assert.match(
      (await page.textContent(`${endpointRow} .state`)) ?? '',
      /^disabled 3 consecutive failed deliveries; the last: HTTP 500$/,
    );
    assert.match((await page.textContent(endpointRow)) ?? '', new RegExp(`${margaret.id}.*${receiver.url}.*\\*`));

    // The endpoint: its fields, the reason, its deliveries.
    await page.click(`${endpointRow} a[href^="#/webhooks/"]`);
    await page.waitForSelector('#endpoint-title:has-text("disabled")');
    assert.equal(hash(), `#/webhooks/${endpointId}`);
    assert.match((await page.textContent('#endpoint-disabled')) ?? '', /^Disabled: 3 consecutive failed deliveries/);
    await page.waitForSelector(`#endpoint-deliveries tr[data-id="${failed.id}"][data-status="failed"]`);

    // The delivery log, filtered by endpoint and status, then the delivery: three attempts, each a 500.
    await openSection('webhook-deliveries');
    await page.fill('#delivery-filters [name="endpoint_id"]', endpointId);
    await page.selectOption('#delivery-filters [name="status"]', 'failed');
    await page.click('#delivery-filters button[type="submit"]');
    await rowsBecome('delivery-table', [failed.id]);
    assert.equal(hash(), `#/webhook-deliveries?endpoint_id=${endpointId}&status=failed`);
    await page.selectOption('#delivery-filters [name="status"]', 'succeeded');
    await page.click('#delivery-filters button[type="submit"]');
    await rowsBecome('delivery-table', []);
    assert.equal(await page.isVisible('#delivery-empty'), true);
    await page.goBack();
    await rowsBecome('delivery-table', [failed.id]);
    await page.click(`#delivery-table tr[data-id="${failed.id}"] a[href^="#/webhook-deliveries/"]`);
    await page.waitForSelector('#delivery-title:has-text("Delivery of deposit.pending failed")');
    const attempts = () => page.$$eval('#attempt-table tbody tr .answer', (cells) => cells.map((c) => c.textContent));
    assert.deepEqual(await attempts(), ['HTTP 500', 'HTTP 500', 'HTTP 500']);
    assert.equal(await page.textContent('[data-field="Event id (webhook-id)"]'), failed.event_id);
    const event = JSON.parse((await page.textContent('#delivery-event')) ?? '');
    assert.deepEqual(
      { id: event.id, type: event.type, created_at: event.created_at },
      { id: failed.event_id, type: 'deposit.pending', created_at: failed.created_at },
    );
    // The whole body the receiver got, `data` included: the transaction as it was at this change.
    assert.deepEqual([event.data.id, event.data.status], [failed.transaction_id, 'pending']);
    await page.waitForSelector('#delivery-event-note:has-text("deposit of 424.24 USD")');
    await page.reload();
    await page.waitForSelector('#delivery-title:has-text("failed")');
    assert.deepEqual(await attempts(), ['HTTP 500', 'HTTP 500', 'HTTP 500']);
    const deliveryHash = hash();

    // The receiver recovers; the endpoint is enabled again, from its page, with the keyboard.
    receiver.answerWith(() => 200);
    await page.click('[data-field="Endpoint"] a');
    await page.waitForSelector('#endpoint-enable:not([hidden])');
    await page.focus('#endpoint-enable');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#enable-result[data-status="200"]');
    await page.waitForSelector('#endpoint-title:has-text("enabled")');
    assert.equal(await page.isVisible('#endpoint-enable'), false);
    assert.equal(await page.isVisible('#endpoint-disabled'), false);

    // Redeliver: a fresh Idempotency-Key, the 202 in words, then the new round's 200 on the page.
    await page.goBack();
    assert.equal(hash(), deliveryHash);
    await page.waitForSelector('#redeliver:not([hidden])');
    const sent = page.waitForRequest((redeliver) =>
      redeliver.url().endsWith(`/webhook-deliveries/${failed.id}/redeliver`),
    );
    await page.click('#redeliver');
    assert.match((await sent).headers()['idempotency-key'] ?? '', UUID);
    await page.waitForSelector('#redeliver-result[data-status="202"]');
    assert.match(
      (await page.textContent('#redeliver-result')) ?? '',
      new RegExp(`^202 Accepted: .*${failed.event_id}`),
    );
    await page.waitForSelector('#delivery-title:has-text("succeeded")');
    assert.deepEqual(await attempts(), ['HTTP 500', 'HTTP 500', 'HTTP 500', 'HTTP 200']);
    const sentToReceiver = receiver.received.filter((entry) => entry.json.id === failed.event_id);
    assert.equal(sentToReceiver.length, 4, 'the same event every time');
    assert.ok(sentToReceiver.every((entry) => entry.headers['webhook-id'] === failed.event_id));
    await shot('webhooks');

    // The user's page lists their endpoints, each a link to it.
    await page.goto(`${gateway!.url}/admin#/users/${margaret.id}`);
    await page.waitForSelector(`#user-endpoints tr[data-id="${endpointId}"][data-state="enabled"]`);
    await page.click(`#user-endpoints tr[data-id="${endpointId}"] a`);
    await page.waitForSelector('#endpoint-title:has-text("enabled")');
    assert.equal(hash(), `#/webhooks/${endpointId}`);

    // Twenty endpoints more (for an event that never comes): the first one is on the second page.
    const newer: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      const more = await request('POST', '/api/v1/webhook-endpoints', {
        key: margaret.api_key,
        body: { url: `${receiver.url}/${i}`, event_types: ['withdrawal.failed'] },
        idempotencyKey: crypto.randomUUID(),
      });
      assert.equal(more.status, 201, more.text);
      newer.unshift(more.json.id as string);
    }
    await page.goto(`${gateway!.url}/admin#/webhooks?user_id=${margaret.id}`);
    await rowsBecome('endpoint-table', newer);
    assert.equal(await page.textContent('#endpoint-pager [data-page="label"]'), 'Page 1');
    await page.click('#endpoint-pager [data-page="next"]');
    await rowsBecome('endpoint-table', [endpointId]);
    assert.equal(await page.textContent('#endpoint-pager [data-page="label"]'), 'Page 2');
    assert.match(hash(), /cursor=/);
    await page.click('#endpoint-pager [data-page="previous"]');
    await rowsBecome('endpoint-table', newer);
  });

  test('no script error and no content-security-policy violation on the way', (t) => {
    if (!ready(t)) return;
    assert.deepEqual(scriptErrors, []);
  });
});
