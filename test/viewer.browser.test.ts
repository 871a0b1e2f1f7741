import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { scaled } from './support/time.ts';
import { CHROMIUM, SCREENSHOTS, SKIP_REASON, launchChromium } from './support/browser.ts';

// The transaction viewer in headless Chromium (Debian's package), against a gateway whose in-process
// bank answers in 300–600 ms, so that a deposit is visibly open for a moment before it succeeds.
const WAIT_MS = scaled(10_000);
const CURRENCIES = ['USD', 'EUR', 'GBP'];

// Runs in the page (as source: this project's TypeScript has no DOM types, and functions passed to
// the page below reach the DOM through `globalThis`). Records every status a
// row shows, in order, even when several changes land in one task: a status cell's text node is
// replaced on each change, so each record carries the text before and after it. Run again, it
// starts a new log with the same observer.
const RECORD_STATUSES = `
  window.__sameDocument = true;
  if (!window.__statusLog) new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node instanceof HTMLTableRowElement) window.__statusLog.inserted.push(node.dataset.id);
      }
      const cell = record.target;
      if (cell instanceof HTMLTableCellElement && cell.classList.contains('status')) {
        window.__statusLog.changes.push([
          cell.parentElement.dataset.id,
          record.removedNodes[0]?.textContent ?? '',
          record.addedNodes[0]?.textContent ?? '',
        ]);
      }
    }
  }).observe(document.getElementById('rows'), { childList: true, subtree: true });
  window.__statusLog = { inserted: [], changes: [] };
`;

// Runs in the page: records the USD balance row each time it is drawn, as [available, held].
const RECORD_BALANCES = `
  window.__balanceLog = [];
  new MutationObserver(() => {
    const row = document.querySelector('#balances tr[data-currency="USD"]');
    if (row) window.__balanceLog.push([row.querySelector('.available').textContent, row.querySelector('.held').textContent]);
  }).observe(document.querySelector('#balances tbody'), { childList: true });
`;

// Runs in the page: records the event types the detail's audit trail shows, each time it is drawn.
const RECORD_TRAIL = `
  window.__trailLog = [];
  new MutationObserver(() => {
    const rows = [...document.querySelectorAll('#detail-events tbody tr')];
    window.__trailLog.push(rows.map((row) => row.dataset.type));
  }).observe(document.querySelector('#detail-events tbody'), { childList: true });
`;

let gateway: Gateway | undefined;
let browser: Browser | undefined;
let page: Page;
let request: ReturnType<typeof client>;
let user: { id: string; api_key: string };
/** The deposit the form test made, which the dashboard test then looks for. */
let formDepositId: string | undefined;
let navigations = 0;
const scriptErrors: string[] = [];
/**
 * Addresses whose failed load a test causes on purpose (a refusal, a cut connection): the browser
 * reports those in its console, and they are not script errors.
 */
const expectedFailedLoads = new Set<string>();

before(async () => {
  // The bank answers slowly enough, on the machine's time scale, that the page shows a deposit open
  // before it settles even when a loaded machine renders it late.
  gateway = await startTestGateway({
    BANK_MIN_DELAY_MS: String(scaled(1500)),
    BANK_MAX_DELAY_MS: String(scaled(2000)),
    CURRENCIES: CURRENCIES.join(','),
  });
  request = client(gateway.url);
  user = await createUser(request, 'Viewer Person');
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  page.on('console', (message) => {
    // The browser asks for /favicon.ico on its own; the gateway has none (a 404 that harms nothing).
    const url = message.location().url;
    const expected = message.text().startsWith('Failed to load resource') && expectedFailedLoads.has(url);
    if (message.type() === 'error' && !url.endsWith('/favicon.ico') && !expected) {
      scriptErrors.push(message.text());
    }
  });
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
});

after(async () => {
  await browser?.close();
  await gateway?.close();
});

/** Skips the test when there is no browser; true when it may run. */
function ready(t: TestContext): boolean {
  if (browser && gateway) return true;
  t.skip(SKIP_REASON);
  return false;
}

const shot = (name: string) => page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
const rowIds = () => page.$$eval('#rows tr', (rows) => rows.map((row) => row.getAttribute('data-id') ?? ''));

async function apiDeposit(amount: number): Promise<string> {
  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
  });
  assert.equal(answer.status, 202, answer.text);
  return answer.json.id as string;
}

/** Changes a filter and waits for the page the viewer reads because of it. */
async function filter(id: string, value: string, expectedQuery: RegExp): Promise<void> {
  const read = page.waitForResponse((response) => response.url().includes('/transactions?'));
  await page.selectOption(id, value);
  const response = await read;
  assert.match(response.url(), expectedQuery);
  assert.equal(response.status(), 200);
}

/** An amount in USD minor units as the page shows it (below 1,000.00: no thousands separator). */
const usd = (minor: number) => `${Math.trunc(minor / 100)}.${String(minor % 100).padStart(2, '0')}`;

/** Waits until the page's USD balance row shows these texts. */
async function balanceShows(available: string, held: string): Promise<void> {
  await page.waitForFunction(
    ([available, held]) => {
      const row = (globalThis as any).document.querySelector('#balances tr[data-currency="USD"]');
      return (
        row?.querySelector('.available').textContent === available && row.querySelector('.held').textContent === held
      );
    },
    [available, held],
  );
}

/** The USD balance of the user, from the API. */
async function apiBalance(): Promise<{ available: number; held: number }> {
  const answer = await request('GET', `/api/v1/users/${user.id}/balance`, { key: user.api_key });
  assert.equal(answer.status, 200, answer.text);
  return (answer.json.balances as { currency: string; available: number; held: number }[]).find(
    (balance) => balance.currency === 'USD',
  )!;
}

/** Submits the withdrawal form; resolves to the id the page says was created. */
async function withdrawFromForm(amount: string, description = ''): Promise<string> {
  await page.fill('#withdrawal-amount', amount);
  await page.selectOption('#withdrawal-currency', 'USD');
  await page.fill('#withdrawal-description', description);
  const before = (await page.textContent('#withdrawal-result')) ?? '';
  await page.click('#withdrawal-form button[type=submit]');
  await page.waitForFunction((before) => {
    const text = (globalThis as any).document.getElementById('withdrawal-result').textContent;
    return text !== '' && text !== before;
  }, before);
  const result = (await page.textContent('#withdrawal-result')) ?? '';
  const match = /^Withdrawal (\S+) created: /.exec(result);
  assert.ok(match, result);
  return match[1]!;
}

/** Waits until the table shows exactly these transactions, in this order. */
async function rowsBecome(ids: readonly string[]): Promise<void> {
  await page.waitForFunction((expected) => {
    const rows: any[] = [...(globalThis as any).document.querySelectorAll('#rows tr')];
    return rows.map((row) => row.dataset.id).join() === expected;
  }, ids.join());
}

describe('the transaction viewer, served', () => {
  test('GET / and its files: their types, no inline script or style, nothing from elsewhere', async () => {
    const page = await request('GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const files = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual(files, ['/viewer/base.css', '/viewer/viewer.css', '/viewer/viewer.js']);
    // The forms offer the configured currencies before any balance is read.
    assert.match(page.text, new RegExp(`<meta name="currencies" content="${CURRENCIES.join(',')}" />`));
    assert.doesNotMatch(page.text, /<style|\sstyle=|<script(?![^>]*\ssrc=)|\son[a-z]+=/i);
    const sources = [page.text];
    const modules = ['api.js', 'event-stream.js', 'money.js', 'payment-form.js', 'transaction-detail.js'];
    for (const file of ['base.css', 'viewer.css', 'viewer.js', ...modules, 'transaction-table.js', 'user-picker.js']) {
      const served = await request('GET', `/viewer/${file}`);
      assert.equal(served.status, 200, file);
      assert.match(
        served.headers.get('content-type') ?? '',
        file.endsWith('.css') ? /^text\/css/ : /^text\/javascript/,
      );
      sources.push(served.text);
    }
    for (const source of sources) {
      assert.doesNotMatch(source, /https?:\/\/|innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(/);
      assert.doesNotMatch(source, /api_key=|new EventSource/, 'the key travels in the Authorization header only');
    }
    for (const path of ['/viewer/nope.js', '/viewer/..%2Fgateway.ts', '/viewer/index.html']) {
      assert.equal((await request('GET', path)).status, 404, path);
    }
  });
});

describe('the transaction viewer in a browser', () => {
  test('a key opens the account: the user id, the balance, an empty history, a live stream', async (t) => {
    if (!ready(t)) return;
    await page.goto(`${gateway!.url}/`);
    navigations = 0;
    await shot('viewer-0-key');
    await page.fill('#key', user.api_key);
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#live[data-state="live"]');
    assert.equal(await page.textContent('#user-id'), user.id);
    assert.match((await page.textContent('#who')) ?? '', /Viewer Person/);
    await page.waitForSelector('#balances tr[data-currency="USD"]');
    assert.equal(await page.textContent('#balances tr[data-currency="USD"] .available'), '0.00');
    assert.equal(await page.isVisible('#empty'), true);
    assert.equal(page.url(), `${gateway!.url}/`, 'the key must not travel in the URL');
    await shot('viewer-1-signed-in');
  });

  test('a deposit from the form shows as pending, then turns succeeded live, without a reload', async (t) => {
    if (!ready(t)) return;
    await page.evaluate(RECORD_STATUSES);

    await page.fill('#deposit-amount', '10.50');
    await page.selectOption('#deposit-currency', 'USD');
    const keyBefore = await page.textContent('#idempotency-key');
    assert.match(keyBefore ?? '', /^[0-9a-f-]{36}$/);
    await page.click('#deposit-form button[type=submit]');
    const row = await page.waitForSelector('#rows tr[data-id]');
    const id = (await row.getAttribute('data-id'))!;
    assert.match((await row.textContent()) ?? '', /10\.50/);
    assert.match((await page.textContent(`#rows tr[data-id="${id}"] .status`)) ?? '', /^(pending|processing)$/);
    await shot('viewer-2-deposit-open');

    await page.waitForSelector(`#rows tr[data-id="${id}"][data-status="succeeded"]`);
    const log: any = await page.evaluate('window.__statusLog');
    const changes = (log.changes as [string, string, string][]).filter(([row]) => row === id);
    const shown = [changes[0]?.[1], ...changes.map(([, , to]) => to)];
    assert.deepEqual(shown, ['pending', 'processing', 'succeeded']);
    assert.deepEqual(log.inserted, [id]);
    assert.equal(await page.evaluate('window.__sameDocument'), true, 'the page was reloaded');
    assert.equal(navigations, 0);

    await page.waitForFunction(() => {
      const cell = (globalThis as any).document.querySelector('#balances tr[data-currency="USD"] .available');
      return cell?.textContent === '10.50';
    });
    assert.match((await page.textContent('#deposit-result')) ?? '', new RegExp(`Deposit ${id} created`));
    assert.notEqual(await page.textContent('#idempotency-key'), keyBefore, 'a new key for the next deposit');
    const stored = await request('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
    assert.deepEqual([stored.json.amount, stored.json.currency, stored.json.status], [1050, 'USD', 'succeeded']);
    await shot('viewer-3-deposit-succeeded');
    formDepositId = id;
  });

  test('the task dashboard shows the same payment among the recently finished, by itself', async (t) => {
    if (!ready(t) || !formDepositId) return;
    const dashboard = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      dashboard.on('pageerror', (error) => scriptErrors.push(error.message));
      await dashboard.goto(gateway!.dashboardUrl);
      // Its reads need the admin key: until the operator types it in, the page asks for it.
      const prompt = await dashboard.waitForSelector('#key-prompt:visible');
      assert.match((await prompt.textContent()) ?? '', /Enter the admin key/);
      assert.equal(await dashboard.textContent('#recent'), '', 'nothing is shown without the key');
      await dashboard.fill('#admin-key', `${ADMIN_KEY}-wrong`);
      await dashboard.click('#key-form button[type="submit"]');
      await dashboard.waitForSelector('#key-prompt:visible:has-text("refused")');
      await dashboard.screenshot({ path: `${SCREENSHOTS}dashboard-0-key-refused.png`, fullPage: true });
      await dashboard.fill('#admin-key', ADMIN_KEY);
      await dashboard.click('#key-form button[type="submit"]');
      const row = await dashboard.waitForSelector(`#recent tr:has-text("${formDepositId}")`);
      assert.equal(await dashboard.isVisible('#key-prompt'), false, 'the prompt is gone once the key works');
      assert.match((await row.textContent()) ?? '', /succeeded/);
      assert.match((await dashboard.textContent('#circuit')) ?? '', /closed/);
      // The shard owners: this instance holds all 64, its lease expiry (from Redis) is a time, its actors counted.
      const owner = await dashboard.waitForSelector('#shards tr:has-text("(this instance)")');
      const cells = await owner.$$eval('td', (tds) => tds.map((td) => td.textContent ?? ''));
      assert.equal(cells.length, 6, cells.join(' | '));
      assert.deepEqual(cells.slice(1, 3), ['0–63', '64']);
      assert.match(cells[4] ?? '', /\d{1,2}:\d\d:\d\d/, 'the lease expiry is a time, not "held until lost"');
      assert.match(cells[5] ?? '', /^\d+$/, 'the actors alive are counted');
      await dashboard.screenshot({ path: `${SCREENSHOTS}dashboard-1-recent.png`, fullPage: true });
    } finally {
      await dashboard.close();
    }
  });

  test('filters: status=succeeded shows the deposit, status=failed shows none', async (t) => {
    if (!ready(t)) return;
    const [id] = await rowIds();
    assert.ok(id);
    await filter('#filter-status', 'succeeded', /status=succeeded/);
    await rowsBecome([id]);
    await filter('#filter-status', 'failed', /status=failed/);
    await rowsBecome([]);
    assert.equal(await page.isVisible('#empty'), true);
    await shot('viewer-4-filter-failed');
    await filter('#filter-status', '', /transactions\?(?!.*status)/);
    await rowsBecome([id]);
    await filter('#filter-currency', 'EUR', /currency=EUR/);
    await rowsBecome([]);
    await filter('#filter-currency', '', /transactions\?(?!.*currency)/);
    await rowsBecome([id]);
    assert.equal(navigations, 0);
  });

  test('paging: new deposits appear live; past a page, Older shows the next page and Newer comes back', async (t) => {
    if (!ready(t)) return;
    await filter('#filter-limit', '10', /limit=10/);
    const created: string[] = [];
    for (let i = 1; i <= 11; i += 1) created.push(await apiDeposit(100 + i));
    // Created through the API, not the page: they reach it through the event stream alone.
    const history = await request('GET', `/api/v1/users/${user.id}/transactions?limit=100`, { key: user.api_key });
    const all = (history.json.data as { id: string }[]).map((transaction) => transaction.id);
    assert.equal(all.length, 12);
    await rowsBecome(all);

    await page.click('#refresh');
    await rowsBecome(all.slice(0, 10));
    assert.equal(await page.isEnabled('#older'), true);
    assert.equal(await page.isEnabled('#newer'), false);

    const next = page.waitForResponse((response) => /\/transactions\?.*cursor=/.test(response.url()));
    await page.click('#older');
    await next;
    await rowsBecome(all.slice(10));
    assert.equal(await page.textContent('#page'), 'Page 2');
    assert.equal(await page.isEnabled('#older'), false);
    assert.equal(await page.isEnabled('#newer'), true);
    await shot('viewer-5-page-2');

    await page.click('#newer');
    await rowsBecome(all.slice(0, 10));
    assert.equal(await page.textContent('#page'), 'Page 1');
    await page.waitForSelector(`#rows tr[data-id="${created.at(-1)}"][data-status="succeeded"]`);
    assert.equal(navigations, 0);
    await shot('viewer-6-page-1');
  });

  test('the admin key shows the account of the user it names, live as well', async (t) => {
    if (!ready(t)) return;
    const context = await browser!.newContext();
    try {
      const admin = await context.newPage();
      admin.setDefaultTimeout(WAIT_MS);
      await admin.goto(`${gateway!.url}/`);
      await admin.fill('#key', ADMIN_KEY);
      await admin.click('#key-form button[type=submit]');
      await admin.waitForSelector('#admin-form:not([hidden])');
      assert.equal(await admin.textContent('#who'), 'Signed in as the admin');
      await admin.fill('#admin-user', user.id);
      await admin.click('#admin-form button[type=submit]');
      await admin.waitForSelector('#live[data-state="live"]');
      await admin.waitForFunction(
        (count) => (globalThis as any).document.querySelectorAll('#rows tr').length === count,
        12,
      );
      const id = await apiDeposit(2_00);
      await admin.waitForSelector(`#rows tr[data-id="${id}"][data-status="succeeded"]`);
      await admin.screenshot({ path: `${SCREENSHOTS}viewer-7-admin.png`, fullPage: true });
    } finally {
      await context.close();
    }
  });

  test('a withdrawal from the form holds its amount: available drops, held shows it, the row settles', async (t) => {
    if (!ready(t)) return;
    const start = await apiBalance();
    assert.equal(start.held, 0);
    await balanceShows(usd(start.available), '0.00');
    await page.evaluate(RECORD_STATUSES);
    await page.evaluate(RECORD_BALANCES);

    const id = await withdrawFromForm('5.00', 'Rent share');
    assert.match((await page.textContent('#withdrawal-result')) ?? '', /created: 5\.00 USD\.$/);
    await page.waitForSelector(`#rows tr[data-id="${id}"]`);
    assert.equal(await page.textContent(`#rows tr[data-id="${id}"] .type`), 'withdrawal');
    assert.equal(await page.textContent(`#rows tr[data-id="${id}"] .amount`), '5.00');
    // While the bank works, the amount is held: out of the available balance, not yet gone.
    await balanceShows(usd(start.available - 500), '5.00');
    await shot('viewer-8-withdrawal-held');

    await page.waitForSelector(`#rows tr[data-id="${id}"][data-status="succeeded"]`);
    await balanceShows(usd(start.available - 500), '0.00');
    const log: any = await page.evaluate('window.__statusLog');
    const changes = (log.changes as [string, string, string][]).filter(([row]) => row === id);
    assert.deepEqual([changes[0]?.[1], ...changes.map(([, , to]) => to)], ['pending', 'processing', 'succeeded']);
    assert.deepEqual(log.inserted, [id]);
    const stored = await request('GET', `/api/v1/withdrawals/${id}`, { key: user.api_key });
    assert.deepEqual(
      [stored.json.amount, stored.json.currency, stored.json.description, stored.json.status],
      [500, 'USD', 'Rent share', 'succeeded'],
    );
    assert.deepEqual(await apiBalance(), { currency: 'USD', available: start.available - 500, held: 0 });
    await shot('viewer-9-withdrawal-succeeded');
  });

  test('a withdrawal above the available balance is refused, in words, next to its form', async (t) => {
    if (!ready(t)) return;
    expectedFailedLoads.add(`${gateway!.url}/api/v1/withdrawals`);
    await page.fill('#withdrawal-amount', '100000.00');
    await page.fill('#withdrawal-description', '');
    const rows = await rowIds();
    await page.click('#withdrawal-form button[type=submit]');
    await page.waitForSelector('#withdrawal-error:has-text("more than the available balance")');
    assert.equal(await page.textContent('#withdrawal-error'), 'The amount is more than the available balance.');
    assert.deepEqual(await rowIds(), rows, 'nothing was created');
    await shot('viewer-10-insufficient-funds');
  });

  test('a withdrawal whose answer is lost is sent again with the same key, and made once', async (t) => {
    if (!ready(t)) return;
    expectedFailedLoads.add(`${gateway!.url}/api/v1/withdrawals`);
    await page.fill('#withdrawal-amount', '1.25');
    await page.fill('#withdrawal-description', 'lost answer');
    const key = await page.textContent('#withdrawal-idempotency-key');
    assert.match(key ?? '', /^[0-9a-f-]{36}$/);
    let cut = false;
    // The first POST reaches the gateway, which makes the withdrawal; its answer never reaches the page.
    await page.route('**/api/v1/withdrawals', async (route) => {
      if (cut || route.request().method() !== 'POST') return route.fallback();
      cut = true;
      await route.fetch();
      await route.abort('connectionreset');
    });
    try {
      await page.click('#withdrawal-form button[type=submit]');
      await page.waitForSelector('#withdrawal-error:has-text("No answer from the gateway")');
      assert.equal(await page.textContent('#withdrawal-idempotency-key'), key, 'the same submission keeps its key');
      const sent = page.waitForRequest((r) => r.url().endsWith('/api/v1/withdrawals') && r.method() === 'POST');
      await page.click('#withdrawal-form button[type=submit]');
      assert.equal((await sent).headers()['idempotency-key'], key);
      await page.waitForSelector('#withdrawal-result:has-text("a replay: it existed already")');
      assert.equal(await page.textContent('#withdrawal-error'), '');
    } finally {
      await page.unroute('**/api/v1/withdrawals');
    }
    const made = await request('GET', '/api/v1/withdrawals?limit=100', { key: user.api_key });
    const lost = (made.json.data as { description: string | null }[]).filter((w) => w.description === 'lost answer');
    assert.equal(lost.length, 1);
    assert.notEqual(await page.textContent('#withdrawal-idempotency-key'), key, 'a new key for the next one');
  });

  test('a failed payment says why in its row, and in its detail', async (t) => {
    if (!ready(t)) return;
    // 666.66 is the bank simulator's amount that is accepted, then declined.
    await page.fill('#deposit-amount', '666.66');
    await page.selectOption('#deposit-currency', 'USD');
    await page.click('#deposit-form button[type=submit]');
    await page.waitForSelector('#deposit-result:has-text("666.66 USD")');
    const id = /^Deposit (\S+) created/.exec((await page.textContent('#deposit-result')) ?? '')![1]!;
    const row = await page.waitForSelector(`#rows tr[data-id="${id}"][data-status="failed"]`);
    const stored = await request('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
    assert.equal(stored.json.status, 'failed');
    const reason = `${stored.json.failure.message} (${stored.json.failure.code})`;
    const failureCell = await row.$('.failure');
    assert.equal(await failureCell!.textContent(), reason);
    assert.equal(await failureCell!.isVisible(), true);
    assert.match(reason, /declined/);
    await shot('viewer-11-failed-row');

    await row.click();
    await page.waitForSelector('#detail:not([hidden])');
    assert.equal(await page.textContent('#detail-failure'), `Failed: ${reason}`);
    assert.equal(await page.isVisible('#detail-failure'), true);
    assert.equal(await page.textContent('#detail [data-field="failure"]'), reason);
    await page.waitForSelector('#detail-events tr[data-type="transaction_failed"]');
    await shot('viewer-12-failed-detail');
    await page.click('#detail-close');
    assert.equal(await page.isVisible('#detail'), false);
  });

  test('Enter on a row opens every field and the audit trail, which follows the payment live', async (t) => {
    if (!ready(t)) return;
    await page.evaluate(RECORD_TRAIL);
    // 424.24 is the bank simulator's amount that always succeeds.
    const created = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 424_24, currency: 'USD', description: 'Invoice 17', metadata: { order: 'A-17' } },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(created.status, 202, created.text);
    const id = created.json.id as string;
    await page.focus(`#rows tr[data-id="${id}"]`);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#detail:not([hidden])');
    const field = (name: string) => page.textContent(`#detail [data-field="${name}"]`);
    assert.equal(await field('id'), id);
    assert.equal(await field('user_id'), user.id);
    assert.equal(await field('amount'), '424.24 USD');
    assert.equal(await field('description'), 'Invoice 17');
    assert.deepEqual(JSON.parse((await field('metadata')) ?? ''), { order: 'A-17' });
    assert.equal(await field('failure'), '—');
    assert.equal(await page.isVisible('#detail-failure'), false);

    await page.waitForSelector('#detail-events tr[data-type="transaction_succeeded"]');
    assert.equal(await field('status'), 'succeeded');
    const trail = await page.$$eval('#detail-events tbody tr', (rows) =>
      (rows as HTMLTableRowElement[]).map((row) => [
        row.getAttribute('data-type'),
        Number(row.cells[0]!.textContent),
        row.cells[4]!.textContent,
      ]),
    );
    const types = trail.map(([type]) => type);
    const order = ['transaction_created', 'transaction_processing', 'transaction_succeeded'].map((type) =>
      types.indexOf(type),
    );
    assert.ok(order[0] === 0 && order[0] < order[1]! && order[1]! < order[2]!, types.join());
    const seqs = trail.map(([, seq]) => seq as number);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'in the order of the journal',
    );
    assert.equal(trail[0]![2], created.headers.get('x-request-id'), 'the creation names its request');
    assert.notEqual(await field('bank_reference'), 'none yet');
    assert.notEqual(await field('completed_at'), 'not yet');
    // Opened while the bank was still working: the trail grew while it was open.
    const drawn: string[][] = await page.evaluate('window.__trailLog');
    const early = drawn.filter((types) => types.includes('transaction_created'));
    assert.ok(!early[0]!.includes('transaction_succeeded'), JSON.stringify(drawn));
    await shot('viewer-13-detail-trail');

    await page.keyboard.press('Escape');
    assert.equal(await page.isVisible('#detail'), false);
    assert.equal(await page.evaluate('document.activeElement.dataset.id'), id, 'the focus is back on the row');
  });

  test('the admin starts live with the currencies, and finds a user by email in the picker', async (t) => {
    if (!ready(t)) return;
    const picked = (await createUser(request, 'Picker Person')) as { id: string; api_key: string; email: string };
    const context = await browser!.newContext();
    try {
      const admin = await context.newPage();
      admin.setDefaultTimeout(WAIT_MS);
      admin.on('pageerror', (error) => scriptErrors.push(error.message));
      await admin.goto(`${gateway!.url}/`);
      await admin.fill('#key', ADMIN_KEY);
      await admin.click('#key-form button[type=submit]');
      // Usable before anyone is chosen: connected, and the configured currencies on offer.
      await admin.waitForSelector('#live[data-state="live"]');
      for (const select of ['#deposit-currency', '#withdrawal-currency']) {
        assert.deepEqual(
          await admin.$$eval(`${select} option`, (options) => (options as HTMLOptionElement[]).map((o) => o.value)),
          CURRENCIES,
        );
      }
      assert.equal(await admin.isVisible('#account-of'), false);
      assert.equal(await admin.isVisible('#choose-user'), true);
      await admin.screenshot({ path: `${SCREENSHOTS}viewer-14-admin-start.png`, fullPage: true });

      // Part of the email, in other letter case.
      await admin.fill('#admin-user', picked.email.split('@')[0]!.toUpperCase());
      const match = await admin.waitForSelector(`#user-matches button[data-id="${picked.id}"]`);
      assert.match((await match.textContent()) ?? '', new RegExp(`Picker Person.*${picked.email}`));
      await admin.screenshot({ path: `${SCREENSHOTS}viewer-15-admin-picker.png`, fullPage: true });
      await match.click();
      await admin.waitForFunction(
        (id) => (globalThis as any).document.getElementById('user-id').textContent === id,
        picked.id,
      );
      assert.match((await admin.textContent('#shown-user')) ?? '', new RegExp(`Picker Person \\(${picked.email}\\)`));
      await admin.waitForSelector('#live[data-state="live"]');
      await admin.waitForSelector('#balances tr[data-currency="USD"]');

      // The admin's deposit from the form goes to the chosen user.
      await admin.fill('#deposit-amount', '3.00');
      await admin.click('#deposit-form button[type=submit]');
      const row = await admin.waitForSelector('#rows tr[data-id]');
      const id = (await row.getAttribute('data-id'))!;
      const stored = await request('GET', `/api/v1/deposits/${id}`, { key: picked.api_key });
      assert.deepEqual([stored.status, stored.json.user_id, stored.json.amount], [200, picked.id, 300]);
    } finally {
      await context.close();
    }
  });

  test('no script error and no content-security-policy violation on the way', (t) => {
    if (!ready(t)) return;
    assert.deepEqual(scriptErrors, []);
  });
});
