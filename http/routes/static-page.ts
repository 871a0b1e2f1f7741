import { readdirSync, readFileSync } from 'node:fs';
import Router from '@koa/router';
import { errors } from '../errors.ts';

/** A file served as it was read at start. */
export interface StaticFile {
  type: string;
  body: string | Buffer;
}

const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/** The type a page's script or style sheet is served with, by its extension. */
export function typeOf(name: string): string | undefined {
  return TYPES[name.split('.').pop() ?? ''];
}

/**
 * Every script and style sheet of a directory, read now: a missing file stops the start, not a
 * request, and only the files read here are served, so no request path ever reaches the file system.
 */
export function filesOf(directory: URL): Map<string, StaticFile> {
  return new Map(
    readdirSync(directory).flatMap((name) => {
      const type = typeOf(name);
      return type ? [[name, { type, body: readFileSync(new URL(name, directory), 'utf8') }] as const] : [];
    }),
  );
}

/**
 * One of the gateway's pages (plain HTML, no build step, nothing from elsewhere) at `path`, and its
 * files at `files_path/{file}` (404 for any other name). Both are fetched again on each visit
 * (`no-cache`), so that after a deploy the page and its files match.
 */
export function staticPageRoutes(options: {
  path: string;
  page: string;
  files_path: string;
  files: ReadonlyMap<string, StaticFile>;
}): Router {
  const router = new Router();

  router.get(options.path, (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = options.page;
  });

  router.get(`${options.files_path}/:file`, (ctx) => {
    const file = options.files.get(ctx.params.file ?? '');
    if (!file) throw errors.notFound({ what: 'file' });
    ctx.type = file.type;
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = file.body;
  });

  return router;
}
