import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Router from '@koa/router';
import { buildOpenApiDocument } from '../openapi.ts';
import { typeOf, staticPageRoutes, type StaticFile } from './static-page.ts';

const OURS = new URL('../docs/', import.meta.url);

// Swagger UI's files, found where Node finds the swagger-ui-dist package.
const fromSwaggerUi = (name: string) => readFileSync(createRequire(import.meta.url).resolve(`swagger-ui-dist/${name}`));

// Read once at start: a missing file stops the start, not a request, and only these are served.
const PAGE = readFileSync(new URL('index.html', OURS), 'utf8');
const file = (name: string, body: Buffer): [string, StaticFile] => [name, { type: typeOf(name)!, body }];
const FILES = new Map([
  file('swagger-ui-bundle.js', fromSwaggerUi('swagger-ui-bundle.js')),
  file('swagger-ui.css', fromSwaggerUi('swagger-ui.css')),
  file('docs.js', readFileSync(new URL('docs.js', OURS))),
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
  router.use(staticPageRoutes({ path: '/docs', page: PAGE, files_path: '/docs', files: FILES }).routes());

  return router;
}
