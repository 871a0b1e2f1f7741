import { readFileSync } from 'node:fs';
import type Router from '@koa/router';
import { filesOf, staticPageRoutes } from './static-page.ts';

const DIRECTORY = new URL('../viewer/', import.meta.url);
const PAGE = readFileSync(new URL('index.html', DIRECTORY), 'utf8');
const FILES = filesOf(DIRECTORY);
// The page names the configured currencies in this element, so that the forms offer them before any
// balance is read (an admin who has not yet chosen a user has none).
const CURRENCIES_SLOT = '<meta name="currencies" content="" />';

/** The page with the configured currencies in its `currencies` meta element (ISO codes: nothing to escape). */
function pageFor(currencies: readonly string[]): string {
  if (!PAGE.includes(CURRENCIES_SLOT)) throw new Error('index.html has no currencies meta element');
  if (!currencies.every((currency) => /^[A-Z]{3}$/.test(currency))) throw new Error('a currency is not an ISO code');
  return PAGE.replace(CURRENCIES_SLOT, `<meta name="currencies" content="${currencies.join(',')}" />`);
}

/**
 * `GET /`, the transaction viewer (plain HTML, no build step, nothing from elsewhere), and
 * `GET /viewer/{file}`, its style sheet and scripts (ES modules): files of this origin, so the page
 * needs neither inline script nor inline style.
 */
export function viewerRoutes(options: { currencies: readonly string[] }): Router {
  return staticPageRoutes({ path: '/', page: pageFor(options.currencies), files_path: '/viewer', files: FILES });
}
