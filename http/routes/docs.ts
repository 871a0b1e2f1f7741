import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Router from '@koa/router';
import { errors } from '../errors.ts';
import { buildOpenApiDocument } from '../openapi.ts';

const OURS = new URL('../docs/', import.meta.url);
const JAVASCRIPT = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

// Swagger UI's files, found where Node finds the swagger-ui-dist package.
const fromSwaggerUi = (name: string) => readFileSync(createRequire(import.meta.url).resolve(`swagger-ui-dist/${name}`));

// Read once at start: the files are static, and a missing one should stop the start, not a request.
// Only these files are served, so no request path ever reaches the file system.
const PAGE = readFileSync(new URL('index.html', OURS), 'utf8');
const ASSETS = new Map([
  ['swagger-ui-bundle.js', { type: JAVASCRIPT, body: fromSwaggerUi('swagger-ui-bundle.js') }],
  ['swagger-ui.css', { type: CSS, body: fromSwaggerUi('swagger-ui.css') }],
  ['docs.js', { type: JAVASCRIPT, body: readFileSync(new URL('docs.js', OURS)) }],
]);

/**
 * `GET /openapi.json`, the document built once for the configured currencies; `GET /docs`, Swagger UI
 * on it; and `GET /docs/{file}`, Swagger UI's script and style sheet and the script that starts it.
 */
export function docsRoutes(options: { currencies: readonly string[] }): Router {
  const document = JSON.stringify(buildOpenApiDocument({ currencies: options.currencies }));
  const router = new Router();

  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = document;
  });

  // The security-headers middleware gives this page its own policy: scripts of this origin only.
  router.get('/docs', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    // Fetched again on each visit, so that after a deploy the page and its files match.
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = PAGE;
  });

  router.get('/docs/:file', (ctx) => {
    const asset = ASSETS.get(ctx.params.file ?? '');
    if (!asset) throw errors.notFound({ what: 'file' });
    ctx.type = asset.type;
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = asset.body;
  });

  return router;
}
