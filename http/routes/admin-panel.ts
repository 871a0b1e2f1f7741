import { readFileSync } from 'node:fs';
import type Router from '@koa/router';
import { filesOf, staticPageRoutes } from './static-page.ts';

const DIRECTORY = new URL('../admin/', import.meta.url);
const PAGE = readFileSync(new URL('index.html', DIRECTORY), 'utf8');
const FILES = filesOf(DIRECTORY);

/**
 * `GET /admin`, the admin panel, and `GET /admin/{file}`, its style sheet and ES modules. The page
 * holds no data of its own: it asks for the admin key and calls the public API with it, which decides
 * what the key may see.
 */
export function adminPanelRoutes(): Router {
  return staticPageRoutes({ path: '/admin', page: PAGE, files_path: '/admin', files: FILES });
}
