import { readFileSync } from 'node:fs';
import Router from '@koa/router';
import { buildOpenApiDocument } from '../openapi.ts';

// Read once at start: the page is static, and a missing file should stop the start, not a request.
const PAGE = readFileSync(new URL('../docs-page.html', import.meta.url), 'utf8');

/** `GET /openapi.json`, the document built once for the configured currencies, and `GET /docs`, a page to read it. */
export function docsRoutes(options: { currencies: readonly string[] }): Router {
  const document = JSON.stringify(buildOpenApiDocument({ currencies: options.currencies }));
  const router = new Router();

  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = document;
  });

  // The page's script and style are inline; the security-headers middleware gives HTML a policy that allows them.
  router.get('/docs', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = PAGE;
  });

  return router;
}
