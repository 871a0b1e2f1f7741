import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, startTestGateway } from './support/gateway.ts';
import { scaled } from './support/time.ts';

// The transaction viewer in headless Chromium (Debian's package), against a gateway whose in-process
// bank answers in 300–600 ms, so that a deposit is visibly open for a moment before it succeeds.
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];
const SCREENSHOTS = fileURLToPath(new URL('./screenshots/', import.meta.url));
const SKIP_REASON = `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
const WAIT_MS = scaled(10_000);

// Runs in the page (as source: this project's TypeScript has no DOM types, and functions passed to
// the page below reach the DOM through `globalThis`). Records every status a
// row shows, in order, even when several changes land in one task: a status cell's text node is
// replaced on each change, so each record carries the text before and after it.
const RECORD_STATUSES = `
  window.__sameDocument = true;
  window.__statusLog = { inserted: [], changes: [] };
  new MutationObserver((records) => {
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

before(async () => {
  // The bank answers slowly enough, on the machine's time scale, that the page shows a deposit open
  // before it settles even when a loaded machine renders it late.
  gateway = await startTestGateway({
    BANK_MIN_DELAY_MS: String(scaled(1500)),
    BANK_MAX_DELAY_MS: String(scaled(2000)),
  });
  request = client(gateway.url);
  user = await createUser(request, 'Viewer Person');
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  page.on('console', (message) => {
    // The browser asks for /favicon.ico on its own; the gateway has none (a 404 that harms nothing).
    if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) {
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
    assert.deepEqual(files, ['/viewer/viewer.css', '/viewer/viewer.js']);
    assert.doesNotMatch(page.text, /<style|\sstyle=|<script(?![^>]*\ssrc=)|\son[a-z]+=/i);
    const sources = [page.text];
    for (const file of ['viewer.css', 'viewer.js', 'api.js', 'event-stream.js', 'money.js', 'transaction-table.js']) {
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

  test('no script error and no content-security-policy violation on the way', (t) => {
    if (!ready(t)) return;
    assert.deepEqual(scriptErrors, []);
  });
});
