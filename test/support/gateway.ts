import { loadConfig, type Config } from '../../config.ts';
import { startGateway, type Gateway } from '../../gateway.ts';
import { createLogger } from '../../logger.ts';

export const ADMIN_KEY = 'test_admin_key_0123456789';

/** A gateway on a free loopback port, with the suite's database and overrides. */
export async function startTestGateway(overrides: Record<string, string> = {}): Promise<Gateway> {
  const config: Config = loadConfig({
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_API_KEY: ADMIN_KEY,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    ...overrides,
  });
  return startGateway(config, createLogger(config.LOG_LEVEL));
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
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
    const response = await fetch(baseUrl + path, { method, headers, body });
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
