import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Gateway } from '../gateway.ts';
import { SAMPLE_IDEMPOTENCY_KEY } from '../http/openapi-samples.ts';
import { client, createUser, startTestGateway } from './support/gateway.ts';
import { scaled } from './support/time.ts';
import { CHROMIUM, SCREENSHOTS, SKIP_REASON, launchChromium } from './support/browser.ts';

// The API reference at /docs (Swagger UI) in headless Chromium (Debian's package), as a developer
// uses it: read the operations, Authorize with a key, and "Try it out" against this same gateway.
const WAIT_MS = scaled(15_000);

let gateway: Gateway | undefined;
let browser: Browser | undefined;
let page: Page;
let user: { id: string; api_key: string };
let operationCount = 0;
const scriptErrors: string[] = [];
/** Every request the page made to anywhere but this gateway's own address. */
const elsewhere: string[] = [];

before(async () => {
  gateway = await startTestGateway();
  const request = client(gateway.url);
  user = await createUser(request, 'Docs Person');
  const document = (await request('GET', '/openapi.json')).json as { paths: Record<string, object> };
  operationCount = Object.values(document.paths).reduce((sum, item) => sum + Object.keys(item).length, 0);
  if (!existsSync(CHROMIUM)) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  page.on('console', (message) => {
    // The browser asks for /favicon.ico on its own; the gateway has none (a 404 that harms nothing).
    if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) {
      scriptErrors.push(message.text());
    }
  });
  page.on('request', (sent) => {
    const url = new URL(sent.url());
    if (url.protocol !== 'data:' && url.host !== new URL(gateway!.url).host) elsewhere.push(sent.url());
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

/** Opens an operation's panel and its "Try it out" form. */
async function tryOut(operation: string): Promise<void> {
  const block = `#${operation}`;
  await page.click(`${block} .opblock-summary`);
  await page.click(`${block} .try-out__btn`);
  await page.waitForSelector(`${block} .execute`);
}

describe('the API reference in a browser', () => {
  test('loads Swagger UI from this gateway and lists every operation of the document', async (t) => {
    if (!ready(t)) return;
    await page.goto(`${gateway!.url}/docs`);
    await page.waitForSelector('.opblock');
    assert.equal(await page.textContent('.info .title'), 'Payment gateway 1 OAS 3.1');
    assert.equal(await page.locator('.opblock').count(), operationCount);
    assert.match((await page.textContent('#operations-Users-me')) ?? '', /\/api\/v1\/me/);
    await shot('docs');
  });

  test("Authorize with a user's key, then Try it out on GET /api/v1/me: 200 and the user's id", async (t) => {
    if (!ready(t)) return;
    await page.click('.auth-wrapper .authorize');
    await page.fill('.auth-container input', user.api_key);
    await page.click('.auth-container .auth.authorize');
    await page.click('.auth-container .btn-done');

    await tryOut('operations-Users-me');
    const answered = page.waitForResponse((response) => response.url().endsWith('/api/v1/me'));
    await page.click('#operations-Users-me .execute');
    const response = await answered;
    assert.equal(response.status(), 200);
    assert.equal(response.request().headers().authorization, `Bearer ${user.api_key}`);
    const answer = '#operations-Users-me .live-responses-table tbody';
    const shown = await page.waitForSelector(`${answer} .response-col_description .highlight-code`);
    assert.match((await shown.textContent()) ?? '', new RegExp(`"id": "${user.id}"`));
    assert.equal(await page.textContent(`${answer} .response-col_status`), '200');
    await shot('docs-me');
  });

  test("Try it out on POST /api/v1/deposits sends the example's body and Idempotency-Key: 202", async (t) => {
    if (!ready(t)) return;
    await tryOut('operations-Deposits-createDeposit');
    const answered = page.waitForResponse((response) => response.url().endsWith('/api/v1/deposits'));
    await page.click('#operations-Deposits-createDeposit .execute');
    const response = await answered;
    assert.equal(response.status(), 202, await response.text());
    const sent = response.request();
    assert.equal(sent.headers()['idempotency-key'], SAMPLE_IDEMPOTENCY_KEY);
    assert.deepEqual(sent.postDataJSON(), {
      amount: 1050,
      currency: 'USD',
      description: 'Top-up',
      metadata: { order_id: 'A-1042' },
    });
    const deposit = (await response.json()) as { user_id: string; status: string };
    assert.deepEqual([deposit.user_id, deposit.status], [user.id, 'pending']);
    await shot('docs-deposit');
  });

  test('no script error, no content-security-policy violation, no request to another address', (t) => {
    if (!ready(t)) return;
    assert.deepEqual(scriptErrors, []);
    assert.deepEqual(elsewhere, []);
  });
});
