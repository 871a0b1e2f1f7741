import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, settle, startTestGateway } from './support/gateway.ts';
import { elapse, scaled } from './support/time.ts';
import { CHROMIUM, SCREENSHOTS, SKIP_REASON, launchChromium } from './support/browser.ts';

// The task dashboard in headless Chromium (Debian's package), against a gateway whose bank accepts at
// once and settles only when the test says so: a deposit is in flight until then.
const WAIT_MS = scaled(15_000);
const CHARTS = ['transactions', 'latency', 'bank-errors', 'breaker', 'in-flight'];

let gateway: Gateway | undefined;
let browser: Browser | undefined;
let page: Page;
let request: ReturnType<typeof client>;
let user: { id: string; api_key: string };
const scriptErrors: string[] = [];

before(async () => {
  gateway = await startTestGateway({ DASHBOARD_PORT: '0' });
  request = client(gateway.url);
  // A name in the id column would prove nothing: the user is found by the id alone.
  user = await createUser(request, 'Dashboard Browser');
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  page.on('console', (message) => {
    // The browser asks for /favicon.ico on its own; the dashboard has none (a 404 that harms nothing).
    if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) {
      scriptErrors.push(message.text());
    }
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

/** The texts of a chart's legend, series by series: [label, value] (the latest sample's value). */
function legend(chart: string): Promise<string[][]> {
  return page.$$eval(`#chart-${chart} .u-legend .u-series`, (rows) =>
    rows.map((row) => [
      row.querySelector('.u-label')?.textContent ?? '',
      row.querySelector('.u-value')?.textContent ?? '',
    ]),
  );
}

/**
 * Page source (this project's TypeScript has no DOM types, and compiled functions would carry helpers
 * the page lacks) that makes the tab hidden or shown, as switching tabs does, and tells the page.
 */
const hide = (hidden: boolean) => `
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => ${hidden} });
  document.dispatchEvent(new Event('visibilitychange'));
`;

/** Clicks a cell and answers what the browser then has selected: the text an operator would copy. */
async function selectedByClick(selector: string): Promise<string> {
  await page.click(selector);
  return page.evaluate(() => String((globalThis as any).getSelection()));
}

describe('the task dashboard in a browser', () => {
  test('the operator enters the admin key; the charts of the last minutes draw, and keep drawing', async (t) => {
    if (!ready(t)) return;
    await page.goto(gateway!.dashboardUrl);
    await page.waitForSelector('#key-prompt:visible:has-text("Enter the admin key")');
    await page.fill('#admin-key', ADMIN_KEY);
    await page.click('#key-form button[type="submit"]');
    await page.waitForSelector('#key-prompt', { state: 'hidden' });
    for (const chart of CHARTS) {
      // uPlot draws on a canvas; the figure says how many samples it was given.
      await page.waitForSelector(`#chart-${chart} canvas`);
      await page.waitForSelector(`#chart-${chart}[data-samples]:not([data-samples="0"])`);
    }
    const first = Number(await page.getAttribute('#chart-transactions', 'data-samples'));
    // Live: a second later it has drawn a newer sample without being asked.
    await page.waitForFunction(
      (before) => Number((globalThis as any).document.getElementById('chart-transactions').dataset.samples) > before,
      first,
    );
    const [time, created] = await legend('transactions');
    assert.match(time![1]!, /\d{1,2}:\d\d:\d\d/, 'the legend names the latest sample');
    assert.deepEqual(created, ['created / s', '0.00']);
    assert.deepEqual((await legend('breaker'))[1], ['circuit', 'closed']);
    assert.deepEqual(scriptErrors, []);
  });

  test('a deposit made through the API: in flight with its amount formatted and its whole user id, then finished', async (t) => {
    if (!ready(t)) return;
    const answer = await request('POST', '/api/v1/deposits', {
      key: user.api_key,
      body: { amount: 1050, currency: 'USD' },
      idempotencyKey: crypto.randomUUID(),
    });
    assert.equal(answer.status, 202, answer.text);
    const deposit = answer.json.id as string;

    const working = await page.waitForSelector(`#payments tr:has-text("${deposit}")`);
    const cells = await working.$$eval('td', (tds) => tds.map((td) => td.textContent ?? ''));
    assert.deepEqual(cells.slice(0, 4), [deposit, user.id, 'deposit', '10.50 USD']);
    // One click on an id selects all of it, to copy: the whole id, not a shortened one.
    assert.equal(await selectedByClick(`#payments tr:has-text("${deposit}") td:nth-child(2)`), user.id);
    // The chart of payments in flight counts it (the bank settles only when told to).
    await page.waitForFunction(() => {
      const rows = (globalThis as any).document.querySelectorAll('#chart-in-flight .u-legend .u-series');
      return Number(rows[1]?.querySelector('.u-value')?.textContent) >= 1;
    });
    await page.screenshot({ path: `${SCREENSHOTS}dashboard-in-flight.png`, fullPage: true });

    await settle(gateway!, user.id, deposit, 'succeeded');
    const finished = await page.waitForSelector(`#recent tr:has-text("${deposit}")`);
    const row = await finished.$$eval('td', (tds) => tds.map((td) => td.textContent ?? ''));
    assert.deepEqual(row.slice(1, 6), [deposit, user.id, 'deposit', '10.50 USD', 'succeeded']);
    assert.equal(await selectedByClick(`#recent tr:has-text("${deposit}") td:nth-child(3)`), user.id);
    await page.waitForSelector('#payments tr:has-text("No payment is being driven.")');
    await page.screenshot({ path: `${SCREENSHOTS}dashboard.png`, fullPage: true });
    assert.deepEqual(scriptErrors, []);
  });

  test('a hidden tab asks nothing; shown again, it reads at once', async (t) => {
    if (!ready(t)) return;
    const asked: string[] = [];
    const count = (request: { url(): string }) => asked.push(new URL(request.url()).pathname);
    page.on('request', count);
    try {
      await page.evaluate(hide(true));
      // A poll already due when the tab hid may still run, once per reader; then nothing is asked.
      await elapse(scaled(3000));
      assert.ok(asked.filter((path) => path === '/api/series').length <= 1, asked.join(' '));
      assert.ok(asked.filter((path) => path === '/api/state').length <= 1, asked.join(' '));

      const shown = page.waitForRequest((request) => request.url().endsWith('/api/series'));
      await page.evaluate(hide(false));
      await shown;
    } finally {
      page.off('request', count);
    }
  });
});
