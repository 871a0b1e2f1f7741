import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { shardOf } from './engine/shards.ts';
import { createHop, HopError, type HopResponse } from './hop.ts';
import { CALLER_SHARD_HEADER, SHARD_LOCAL_HEADER } from './http/account-shard.ts';
import type { Logger } from './logger.ts';
import type { InstanceRegistry } from './persistence/instances.ts';

/**
 * The shard-aware front door: one public port in front of the gateway instances, sending each request
 * to the instance that owns its account's shard, so that the gateway need not forward it (a second
 * HTTP pass). The shard table in Redis stays the truth and forwarding the fallback: a request whose
 * account the front door cannot tell, or whose owner it does not know (or cannot reach), goes round
 * robin, and the instance it reaches forwards it as before.
 *
 * The account of a request, cheapest first:
 * - the path's `/api/v1/users/{id}/…` (balances, histories);
 * - an `X-Account-Id` header a client may send as a hint (never trusted beyond routing);
 * - the API key's user: opaque (a random key, not the user id), so the front door learns it. Every
 *   gateway answer to a user's request names the shard of the key's account (`X-Caller-Shard`,
 *   http/account-shard.ts); the front door keeps key digest → shard (bounded, least recently used
 *   first out), so that a key's first request may be forwarded, and its next ones are not.
 * Who owns a shard is read from the registry in Redis (the same records the instances route by) every
 * `refresh_ms`, and at once when an instance announces a change on the cluster channel.
 */

export type FrontDoorMode = 'shard' | 'round-robin';

/** Who owns each shard: the owner's URL by shard number (undefined where none), and every live instance's URL. */
export interface RoutingTable {
  owners: (string | undefined)[];
  instances: string[];
}

export interface FrontDoorOptions {
  host: string;
  port: number;
  /** The gateways to fall back on (round robin) when a request's owner is unknown; the live instances when empty. */
  upstreams: string[];
  /** The cluster's SHARDS: the front door computes the shard of a user id in a path. */
  shards: number;
  /** `round-robin` ignores the accounts (the balancer without affinity, for comparison). */
  mode: FrontDoorMode;
  /** Reads the routing table (from the registry in Redis: `registryTable`). */
  readTable: () => Promise<RoutingTable>;
  /** Calls back when the cluster announces a change, so the table is read at once. */
  onChange?: (listener: () => void) => void;
  refresh_ms: number;
  /** A whole proxied request, from the call to the last byte of the answer (event streams aside). */
  timeout_ms: number;
  body_max_bytes: number;
  /** Key digests remembered with their shard. */
  keys_max: number;
  log: Logger;
}

/** The front door's own limits. */
export const FRONT_DOOR_LIMITS = {
  /** Keep-alive connections to one gateway at most; more requests queue within their timeout. */
  sockets_per_upstream_max: 256,
  /** After a connection to a gateway failed, it gets no request for this long (unless nothing else is left). */
  down_ms: 3_000,
  /** Before the gateways' 5 s (GATEWAY_LIMITS.keep_alive_timeout_ms is for them; this is for our clients). */
  keep_alive_timeout_ms: 5_000,
  /** A table older than this is not trusted for routing: round robin until the next read succeeds. */
  table_stale_ms: 10_000,
} as const;

/** What the front door counts; `GET /_front-door/stats`. */
export interface FrontDoorStats {
  requests: number;
  /** How the account was found: path, X-Account-Id, a learned key, or not at all. */
  hint: { path: number; header: number; key: number; none: number };
  /** Sent to the table's owner of the account's shard, or round robin. */
  to_owner: number;
  round_robin: number;
  /** As the gateway that answered says (X-Shard-Local): from its own shard, or after forwarding. */
  answered_locally: number;
  answered_forwarded: number;
  /** Sent again to another gateway after a connection to the first failed (nothing had been sent). */
  retried: number;
  /** Answered 502/504 here: no gateway answered. */
  failed: number;
  keys_learned: number;
  table_reads: number;
  table_read_failures: number;
}

/** Headers that belong to one connection, never passed on (RFC 9110 7.6.1), and the length hop sets itself. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
]);
/** The gateways' hints for this front door: not the client's business. */
const INTERNAL = new Set([CALLER_SHARD_HEADER, SHARD_LOCAL_HEADER]);
const USER_PATH = /^\/api\/v1\/users\/([^/?#]+)\//;
const BEARER = /^Bearer +(\S+)$/i;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The account's shard a request names (path, then X-Account-Id), or undefined. */
export function namedShard(
  path: string,
  headers: IncomingHttpHeaders,
  shards: number,
): { shard: number; from: 'path' | 'header' } | undefined {
  const segment = USER_PATH.exec(path)?.[1];
  if (segment !== undefined) {
    try {
      return { shard: shardOf(decodeURIComponent(segment), shards), from: 'path' };
    } catch {
      // A malformed escape: the gateway answers it; routed round robin.
    }
  }
  const hinted = headers['x-account-id'];
  if (typeof hinted === 'string' && hinted.length > 0 && hinted.length <= 200) {
    return { shard: shardOf(hinted, shards), from: 'header' };
  }
  return undefined;
}

/** A key's digest: the front door keeps no API key in memory. */
const digestOf = (key: string) => createHash('sha256').update(key).digest('base64url').slice(0, 22);

/** The routing table from the instance registry in Redis (persistence/instances.ts). */
export function registryTable(
  registry: Pick<InstanceRegistry, 'owners' | 'live'>,
  shards: number,
): () => Promise<RoutingTable> {
  return async () => {
    const [owners, live] = await Promise.all([registry.owners(shards), registry.live()]);
    const urls = new Map(live.map((instance) => [instance.id, instance.url]));
    return {
      owners: owners.map(({ owner }) => (owner === undefined ? undefined : urls.get(owner))),
      instances: live.map((instance) => instance.url),
    };
  };
}

export interface FrontDoor {
  url: string;
  stats(): FrontDoorStats;
  /** Reads the table now (the tests use it after a change). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export async function startFrontDoor(options: FrontDoorOptions): Promise<FrontDoor> {
  const { log, shards } = options;
  const hop = createHop({
    sockets_max: FRONT_DOOR_LIMITS.sockets_per_upstream_max,
    timeout_ms: options.timeout_ms,
  });
  const stats: FrontDoorStats = {
    requests: 0,
    hint: { path: 0, header: 0, key: 0, none: 0 },
    to_owner: 0,
    round_robin: 0,
    answered_locally: 0,
    answered_forwarded: 0,
    retried: 0,
    failed: 0,
    keys_learned: 0,
    table_reads: 0,
    table_read_failures: 0,
  };
  let table: RoutingTable = { owners: [], instances: [] };
  let tableReadAt = 0;
  const keys = new Map<string, number>();
  /** Until when each gateway is left out after a failed connection. */
  const down = new Map<string, number>();
  let next = 0;

  let reading: Promise<void> | undefined;
  const refresh = () =>
    (reading ??= options
      .readTable()
      .then(
        (read) => {
          table = read;
          tableReadAt = Date.now();
          stats.table_reads += 1;
        },
        (error: unknown) => {
          stats.table_read_failures += 1;
          log.warn({ err: error }, 'could not read the shard table; routing round robin until it can');
        },
      )
      .finally(() => (reading = undefined)));
  await refresh();
  const timer = setInterval(() => void refresh(), options.refresh_ms);
  options.onChange?.(() => void refresh());

  const isUp = (url: string) => (down.get(url) ?? 0) <= Date.now();
  const pool = () => (options.upstreams.length > 0 ? options.upstreams : table.instances);

  /** The next gateway round robin, skipping those down and those already tried (unless none is left). */
  function roundRobin(tried: Set<string>): string | undefined {
    const candidates = pool().filter((url) => !tried.has(url));
    if (candidates.length === 0) return undefined;
    const up = candidates.filter(isUp);
    const from = up.length > 0 ? up : candidates;
    next = (next + 1) % 1_000_000;
    return from[next % from.length];
  }

  /** The owner of `shard` by the table, when it is fresh, known and reachable. */
  function ownerOf(shard: number | undefined): string | undefined {
    if (options.mode !== 'shard' || shard === undefined) return undefined;
    if (Date.now() - tableReadAt > FRONT_DOOR_LIMITS.table_stale_ms) return undefined;
    const owner = table.owners[shard];
    return owner !== undefined && isUp(owner) ? owner : undefined;
  }

  function learn(digest: string, answer: HopResponse): void {
    const value = answer.headers[CALLER_SHARD_HEADER];
    const shard = typeof value === 'string' ? Number(value) : NaN;
    if (!Number.isInteger(shard) || shard < 0 || shard >= shards) return;
    const known = keys.get(digest);
    if (known === shard) return;
    if (known === undefined) stats.keys_learned += 1;
    keys.set(digest, shard);
    if (keys.size > options.keys_max) keys.delete(keys.keys().next().value!);
  }

  function headersFor(request: IncomingMessage): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const address = request.socket.remoteAddress ?? '';
    headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${address}` : address;
    headers['x-forwarded-proto'] = 'http';
    return headers;
  }

  function answer(response: ServerResponse, from: HopResponse): void {
    response.statusCode = from.status;
    for (const [name, value] of Object.entries(from.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || INTERNAL.has(name)) continue;
      response.setHeader(name, value);
    }
    response.setHeader('content-length', from.body.length);
    response.end(from.body);
  }

  function refuse(response: ServerResponse, status: number, error: string, message: string): void {
    if (response.headersSent) return void response.destroy();
    const body = JSON.stringify({ error, message });
    response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    response.end(body);
  }

  async function readBody(request: IncomingMessage): Promise<Buffer | 'too_large'> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > options.body_max_bytes) return 'too_large';
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  /** An event stream lives as long as the client keeps it: piped, outside the pooled hop and its timeout. */
  function stream(request: IncomingMessage, response: ServerResponse, target: string): void {
    const url = new URL(request.url ?? '/', target);
    const upstream = httpRequest(url, { method: request.method, headers: headersFor(request) }, (from) => {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(from.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name) && !INTERNAL.has(name)) headers[name] = value;
      }
      response.writeHead(from.statusCode ?? 502, headers);
      from.pipe(response);
    });
    upstream.on('error', () => refuse(response, 502, 'bad_gateway', 'no gateway answered'));
    response.on('close', () => upstream.destroy());
    request.pipe(upstream);
  }

  /** An HTTP answer's head, written on a raw socket (an upgrade request has no ServerResponse). */
  function writeHead(socket: Duplex, from: IncomingMessage, keep: (name: string) => boolean, extra = ''): void {
    const lines = [`HTTP/1.1 ${from.statusCode ?? 502} ${from.statusMessage ?? ''}`];
    for (let i = 0; i + 1 < from.rawHeaders.length; i += 2) {
      if (keep(from.rawHeaders[i]!.toLowerCase())) lines.push(`${from.rawHeaders[i]}: ${from.rawHeaders[i + 1]}`);
    }
    socket.write(`${lines.join('\r\n')}\r\n${extra}\r\n`);
  }

  /**
   * An upgrade (a WebSocket on GET /api/v1/ws) is tunnelled: its handshake goes to a gateway, round
   * robin (every instance serves the whole cluster's feed), and from the 101 on the bytes are copied
   * both ways for as long as either side keeps the connection. A refused handshake (403, 426, 503) or
   * a request the gateway answers as plain HTTP comes back as it is, and the connection closes.
   */
  function tunnel(request: IncomingMessage, client: Duplex, head: Buffer): void {
    stats.requests += 1;
    tunnels.add(client);
    client.on('error', () => client.destroy());
    client.on('close', () => tunnels.delete(client));
    // Answered as the plain request it also is: an upgrade comes without a ServerResponse of its own.
    const refuseUpgrade = (status: number, error: string, message: string) => {
      const response = new ServerResponse(request);
      response.shouldKeepAlive = false;
      response.assignSocket(client as Socket);
      response.on('finish', () => client.end());
      refuse(response, status, error, message);
    };
    const target = roundRobin(new Set());
    if (target === undefined) return refuseUpgrade(502, 'bad_gateway', 'no gateway is known');
    stats.round_robin += 1;
    const upstream = httpRequest(new URL(request.url ?? '/', target), {
      method: request.method,
      headers: { ...headersFor(request), connection: 'Upgrade', upgrade: request.headers.upgrade ?? '' },
    });
    // A gateway that takes the connection and never answers the handshake must not hold the client.
    const handshake = setTimeout(() => {
      upstream.destroy();
      refuseUpgrade(504, 'gateway_timeout', `no answer to the upgrade within ${options.timeout_ms} ms`);
    }, options.timeout_ms);
    upstream.on('upgrade', (from: IncomingMessage, socket: Duplex, upstreamHead: Buffer) => {
      clearTimeout(handshake);
      writeHead(client, from, (name) => !INTERNAL.has(name));
      socket.on('error', () => socket.destroy());
      socket.on('close', () => client.destroy());
      client.on('close', () => socket.destroy());
      if (upstreamHead.length > 0) client.write(upstreamHead);
      if (head.length > 0) socket.write(head);
      socket.pipe(client).pipe(socket);
    });
    upstream.on('response', (from: IncomingMessage) => {
      clearTimeout(handshake);
      writeHead(client, from, (name) => !HOP_BY_HOP.has(name) && !INTERNAL.has(name), 'connection: close\r\n');
      from.pipe(client);
    });
    upstream.on('error', () => {
      clearTimeout(handshake);
      client.destroy();
    });
    client.on('close', () => {
      clearTimeout(handshake);
      upstream.destroy();
    });
    upstream.end();
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = request.url ?? '/';
    if (path === '/_front-door/health') {
      const fresh = Date.now() - tableReadAt <= FRONT_DOOR_LIMITS.table_stale_ms;
      const body = JSON.stringify({ status: 'ok', mode: options.mode, table_fresh: fresh, gateways: pool().length });
      response.writeHead(200, { 'content-type': 'application/json' });
      return void response.end(body);
    }
    if (path === '/_front-door/stats') {
      response.writeHead(200, { 'content-type': 'application/json' });
      return void response.end(JSON.stringify(stats));
    }
    stats.requests += 1;
    const method = request.method ?? 'GET';
    const key = BEARER.exec(request.headers.authorization ?? '')?.[1];
    const digest = key === undefined ? undefined : digestOf(key);
    const named = namedShard(path, request.headers, shards);
    const learned = digest === undefined ? undefined : keys.get(digest);
    const shard = named?.shard ?? learned;
    if (named) stats.hint[named.from] += 1;
    else if (learned !== undefined) stats.hint.key += 1;
    else stats.hint.none += 1;
    const tried = new Set<string>();
    const owner = ownerOf(shard);
    let target = owner ?? roundRobin(tried);
    if (target === undefined) return refuse(response, 502, 'bad_gateway', 'no gateway is known');
    if (owner) stats.to_owner += 1;
    else stats.round_robin += 1;
    if ((request.headers.accept ?? '').includes('text/event-stream')) return stream(request, response, target);

    const body = IDEMPOTENT.has(method) ? undefined : await readBody(request);
    if (body === 'too_large') {
      stats.failed += 1;
      return refuse(response, 413, 'payload_too_large', `the body exceeds ${options.body_max_bytes} bytes`);
    }
    const headers = headersFor(request);
    for (;;) {
      tried.add(target);
      try {
        const from = await hop.request(target, path, { method, headers, ...(body ? { body } : {}) });
        if (digest !== undefined) learn(digest, from);
        const local = from.headers[SHARD_LOCAL_HEADER];
        if (local === '1') stats.answered_locally += 1;
        else if (local === '0') stats.answered_forwarded += 1;
        return answer(response, from);
      } catch (error) {
        const failure = error instanceof HopError ? error.failure : 'reset';
        // Nothing was sent (no connection), or a read (safe to repeat): another gateway may answer.
        const unsent = failure === 'connect' || failure === 'connect_timeout';
        if (unsent) down.set(target, Date.now() + FRONT_DOOR_LIMITS.down_ms);
        log.warn({ err: error, gateway: target, failure }, 'a gateway did not answer');
        const again = unsent || IDEMPOTENT.has(method) ? roundRobin(tried) : undefined;
        if (again === undefined) {
          stats.failed += 1;
          // A write that may have arrived: as nginx does, no resend; the client's Idempotency-Key tells the outcome.
          const timedOut = error instanceof HopError && error.timedOut;
          return refuse(
            response,
            timedOut ? 504 : 502,
            timedOut ? 'gateway_timeout' : 'bad_gateway',
            'no gateway answered; retry with the same Idempotency-Key',
          );
        }
        stats.retried += 1;
        target = again;
      }
    }
  }

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      log.error({ err: error }, 'front door failed a request');
      refuse(response, 502, 'bad_gateway', 'the front door failed');
    });
  });
  server.keepAliveTimeout = FRONT_DOOR_LIMITS.keep_alive_timeout_ms;
  // Tunnelled connections are no longer the server's: closing the front door ends them itself.
  const tunnels = new Set<Duplex>();
  server.on('upgrade', tunnel);
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  log.info({ port, mode: options.mode, upstreams: options.upstreams, shards }, 'front door listening');

  return {
    url: `http://${options.host === '0.0.0.0' ? '127.0.0.1' : options.host}:${port}`,
    stats: () => structuredClone(stats),
    refresh,
    async close() {
      clearInterval(timer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Event streams end only when their clients leave: cut after a grace period.
        setTimeout(() => server.closeAllConnections(), FRONT_DOOR_LIMITS.keep_alive_timeout_ms).unref();
        for (const socket of tunnels) socket.destroy();
      });
      hop.close();
    },
  };
}
