import { readdirSync, readFileSync } from 'node:fs';
import Router from '@koa/router';
import { errors } from '../errors.ts';

const DIRECTORY = new URL('../viewer/', import.meta.url);
// Read once at start: the files are static, and a missing one should stop the start, not a request.
// Only the files read here are served, so no request path ever reaches the file system.
const PAGE = readFileSync(new URL('index.html', DIRECTORY), 'utf8');
// The page names the configured currencies in this element, so that the forms offer them before any
// balance is read (an admin who has not yet chosen a user has none).
const CURRENCIES_SLOT = '<meta name="currencies" content="" />';
const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
const ASSETS = new Map(
  readdirSync(DIRECTORY).flatMap((name) => {
    const type = TYPES[name.split('.').pop() ?? ''];
    return type ? [[name, { type, body: readFileSync(new URL(name, DIRECTORY), 'utf8') }] as const] : [];
  }),
);

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
  const router = new Router();
  const page = pageFor(options.currencies);

  router.get('/', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    // Fetched again on each visit, so that after a deploy the page and its files match.
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = page;
  });

  router.get('/viewer/:file', (ctx) => {
    const asset = ASSETS.get(ctx.params.file ?? '');
    if (!asset) throw errors.notFound({ what: 'file' });
    ctx.type = asset.type;
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = asset.body;
  });

  return router;
}
