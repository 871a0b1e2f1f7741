import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../config.ts';
import { rendezvousOwner } from '../../engine/shard-leases.ts';
import { shardOf } from '../../engine/shards.ts';
import { startGateway, type Gateway } from '../../gateway.ts';
import { createLogger } from '../../logger.ts';
import { testDatabaseUrl } from './database.ts';
import { testKeyPrefix } from './redis.ts';
import { eventually } from './time.ts';

export const ADMIN_KEY = 'test_admin_key_0123456789';

/** A bank that accepts every transfer and never fails on its own (magic amounts still force failures). */
export const OBEDIENT_BANK = {
  BANK_SUCCESS_RATE: '1',
  BANK_TIMEOUT_RATE: '0',
  BANK_UNAVAILABLE_RATE: '0',
  BANK_INVALID_RATE: '0',
  BANK_INSUFFICIENT_FUNDS_RATE: '0',
  BANK_DUPLICATE_CALLBACK_RATE: '0',
  BANK_LOST_CALLBACK_RATE: '0',
} as const;

/** A gateway on a free loopback port, with the suite's database and overrides; logs go to `destination`. */
export async function startTestGateway(
  overrides: Record<string, string> = {},
  destination?: Writable,
): Promise<Gateway> {
  const config: Config = loadConfig({
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_API_KEY: ADMIN_KEY,
    DATABASE_URL: await testDatabaseUrl(),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    // Limits out of the way and counters of this process's own, unless a test sets them.
    // Under the run's prefix, so that what a test leaves (counters, leases) is dropped when the run ends.
    REDIS_KEY_PREFIX: testKeyPrefix('gw'),
    RATE_LIMIT_GLOBAL_PER_MIN: '10000000',
    RATE_LIMIT_BALANCE_PER_MIN: '10000000',
    RATE_LIMIT_TRANSACTIONS_PER_MIN: '10000000',
    RATE_LIMIT_AUTH_FAILURES_PER_MIN: '10000000',
    // A bank that accepts everything and answers only when a test says so (tests settle by hand).
    BANK_MIN_DELAY_MS: '600000',
    BANK_MAX_DELAY_MS: '600000',
    ...OBEDIENT_BANK,
    BANK_SEED: 'tests',
    // Every gateway of the suite has a dashboard port and a REPL socket of its own.
    DASHBOARD_PORT: '0',
    REPL_SOCKET: join(tmpdir(), `pgw-test-${crypto.randomUUID()}.sock`),
    ...overrides,
  });
  return startGateway(config, createLogger(config.LOG_LEVEL, destination));
}

/**
 * The two instance ids of a pair, chosen so that rendezvous hashing gives each some of the `shards`:
 * with few shards, two ids picked blindly leave one of them none (1 in 128 for 8 shards), and the pair
 * would never be "one cluster where a request is forwarded".
 */
export function pairIds(name: string, shards: number, pid = process.pid): [string, string] {
  for (let n = 0; ; n += 1) {
    const ids: [string, string] = [`${name}-a-${pid}-${n}`, `${name}-b-${pid}-${n}`];
    const owners = new Set(Array.from({ length: shards }, (_, shard) => rendezvousOwner(shard, ids)));
    if (ids.every((id) => owners.has(id))) return ids;
  }
}

/**
 * Two gateways of one cluster (the suite's database, a Redis namespace of their own) once each owns
 * some of the `shards` and knows who owns the others: a request at one for an account of the other's
 * is forwarded. `name` tells their instance ids and keys apart; `overrides` go to both.
 */
export async function startGatewayPair(
  name: string,
  shards: number,
  overrides: Record<string, string> = {},
): Promise<[Gateway, Gateway]> {
  const shared = {
    REDIS_KEY_PREFIX: testKeyPrefix(name),
    SHARDS: String(shards),
    ...overrides,
  };
  const [idA, idB] = pairIds(name, shards);
  const a = await startTestGateway({ ...shared, INSTANCE_ID: idA });
  const b = await startTestGateway({ ...shared, INSTANCE_ID: idB });
  const all = Array.from({ length: shards }, (_, shard) => shard);
  try {
    await eventually(() =>
      all.some((s) => b.shards.owns(s)) &&
      all.every((s) => a.shards.owns(s) !== b.shards.owns(s)) &&
      all.every((s) => a.shards.owns(s) || a.shards.ownerOf(s)?.url === b.url)
        ? true
        : undefined,
    );
  } catch (error) {
    await Promise.all([a.close(), b.close()]);
    throw error;
  }
  return [a, b];
}

/** A user created through `via` whose account `owner` owns (users are made until one falls in its shards). */
export function createUserOwnedBy(
  via: Gateway,
  owner: Gateway,
  shards: number,
  name: string,
): Promise<{ id: string; api_key: string }> {
  return eventually(async () => {
    const made = await createUser(client(via.url), name);
    return owner.shards.owns(shardOf(made.id, shards)) ? made : undefined;
  });
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/**
 * `fetch`, sending a request with an Idempotency-Key once more when its connection was reset: what a
 * real client does, and safe by the key (the gateway replays or runs it once). A keep-alive connection
 * can be reset when the client reuses it just as the server's keep-alive timeout closes it, which a
 * loaded machine makes likely; a request without a key is never sent twice.
 */
async function fetchRetryingReset(url: string, init: RequestInit, idempotencyKey: string | undefined) {
  try {
    return await fetch(url, init);
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code;
    if (idempotencyKey === undefined || (code !== 'ECONNRESET' && code !== 'UND_ERR_SOCKET')) throw error;
    return fetch(url, init);
  }
}

/** A small client for the gateway's HTTP API. */
export function client(baseUrl: string) {
  return async function request(
    method: string,
    path: string,
    options: {
      key?: string;
      body?: unknown;
      raw?: string;
      headers?: Record<string, string>;
      idempotencyKey?: string;
    } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetchRetryingReset(baseUrl + path, { method, headers, body }, options.idempotencyKey);
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  };
}

/** Creates a user through the API and returns it with its key. */
export async function createUser(
  request: ReturnType<typeof client>,
  name = 'Test User',
): Promise<{ id: string; api_key: string }> {
  const email = `${name.replace(/\W/g, '').toLowerCase()}-${crypto.randomUUID()}@example.test`;
  const answer = await request('POST', '/api/v1/users', {
    key: ADMIN_KEY,
    body: { name, email },
    idempotencyKey: crypto.randomUUID(),
  });
  if (answer.status !== 201) throw new Error(`user creation failed: ${answer.status} ${answer.text}`);
  return answer.json as { id: string; api_key: string };
}

/** Settles a transaction as the bank's result would, through the account's actor. */
export async function settle(
  gateway: Gateway,
  user_id: string,
  transaction_id: string,
  outcome: 'succeeded' | 'failed',
): Promise<void> {
  const reply = await gateway.accounts.ask(user_id, {
    kind: 'command',
    command: {
      type: 'settle',
      transaction_id,
      outcome,
      ...(outcome === 'failed' ? { failure: { code: 'bank_declined', message: 'declined in a test' } } : {}),
      at: new Date().toISOString(),
      cause: 'bank_callback',
      request_id: null,
    },
  });
  if (reply.kind !== 'done') throw new Error(`settle refused: ${JSON.stringify(reply)}`);
}

/** Deposits and settles `amount` so the user has funds to withdraw. */
export async function fund(
  gateway: Gateway,
  request: ReturnType<typeof client>,
  user: { id: string; api_key: string },
  amount: number,
  currency = 'USD',
): Promise<void> {
  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount, currency },
    idempotencyKey: crypto.randomUUID(),
  });
  if (answer.status !== 202) throw new Error(`deposit failed: ${answer.status} ${answer.text}`);
  await settle(gateway, user.id, answer.json.id, 'succeeded');
}
