import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { test } from 'node:test';
import { testDatabaseUrl } from './support/database.ts';
import { ADMIN_KEY } from './support/gateway.ts';
import { freePort } from './support/process.ts';

test('SIGTERM stops accepting, lets the request in flight finish, and exits 0', async () => {
  const port = await freePort();
  const child = spawn('node', ['--import', 'tsx', 'main.ts'], {
    env: {
      ...process.env,
      DATABASE_URL: await testDatabaseUrl(),
      PORT: String(port),
      HOST: '127.0.0.1',
      ADMIN_API_KEY: ADMIN_KEY,
      LOG_LEVEL: 'info',
      DASHBOARD_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  while (!output.includes('gateway listening')) await once(child.stdout, 'data');

  const body = JSON.stringify({ name: 'Slow', email: `slow-${crypto.randomUUID()}@example.test` });
  const slow = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/api/v1/users',
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'idempotency-key': crypto.randomUUID(),
    },
  });
  const answered = once(slow, 'response');
  slow.write(body.slice(0, 10));
  await new Promise((resolve) => setTimeout(resolve, 100));
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 100));
  slow.end(body.slice(10));
  const [response] = (await answered) as [import('node:http').IncomingMessage];
  assert.equal(response.statusCode, 201);
  response.resume();

  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 0);
  assert.match(output, /shutting down/);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
});
