import Router from '@koa/router';
import { errors } from '../errors.ts';
import { originAllowed, WS_PATH } from '../websocket.ts';

/**
 * `GET /api/v1/ws` as plain HTTP: the WebSocket handshakes are taken before Koa (http/websocket.ts),
 * so what reaches this route is a request without `Upgrade: websocket` (426), or a handshake from a
 * page of another origin (403), which is refused before any socket exists.
 */
export function webSocketRoutes(cors_origins: readonly string[]): Router {
  const router = new Router();
  router.get(WS_PATH, (ctx) => {
    if (!originAllowed(ctx.req, cors_origins)) throw errors.originNotAllowed();
    throw errors.upgradeRequired();
  });
  return router;
}
