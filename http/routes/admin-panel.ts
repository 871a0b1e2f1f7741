import { readdirSync, readFileSync } from 'node:fs';
import Router from '@koa/router';
import { errors } from '../errors.ts';

const DIRECTORY = new URL('../admin/', import.meta.url);
// Read once at start: the files are static, and a missing one should stop the start, not a request.
// Only the files read here are served, so no request path ever reaches the file system.
const PAGE = readFileSync(new URL('index.html', DIRECTORY), 'utf8');
const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
const ASSETS = new Map(
  readdirSync(DIRECTORY).flatMap((name) => {
    const type = TYPES[name.split('.').pop() ?? ''];
    return type ? [[name, { type, body: readFileSync(new URL(name, DIRECTORY), 'utf8') }] as const] : [];
  }),
);

/**
 * `GET /admin`, the admin panel (plain HTML, no build step, nothing from elsewhere), and
 * `GET /admin/{file}`, its style sheet and ES modules. The page holds no data of its own: it asks for
 * the admin key and calls the public API with it, which decides what the key may see.
 */
export function adminPanelRoutes(): Router {
  const router = new Router();

  router.get('/admin', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    // Fetched again on each visit, so that after a deploy the page and its files match.
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = PAGE;
  });

  router.get('/admin/:file', (ctx) => {
    const asset = ASSETS.get(ctx.params.file ?? '');
    if (!asset) throw errors.notFound({ what: 'file' });
    ctx.type = asset.type;
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = asset.body;
  });

  return router;
}
