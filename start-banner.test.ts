import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { test } from 'node:test';
import { createLogger } from './logger.ts';
import { announceStart, bannerLines, startAddresses, type StartAddresses } from './start-banner.ts';
import { captureLines } from './test/support/log-capture.ts';

/** A server bound like the gateway's with PORT=0: the system picks the port. */
async function listening(host: string): Promise<Server> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  return server;
}

const ADDRESSES: StartAddresses = {
  api: 'http://localhost:3000/api/v1',
  viewer: 'http://localhost:3000/',
  admin: 'http://localhost:3000/admin',
  docs: 'http://localhost:3000/docs',
  dashboard: 'http://127.0.0.1:5555/',
  repl_socket: '/tmp/payment-gateway-a.sock',
  repl: 'npm run repl -- /tmp/payment-gateway-a.sock',
};

test('the addresses carry the ports the servers are bound to; every interface is reached as localhost', async () => {
  const server = await listening('0.0.0.0');
  try {
    const { port } = server.address() as { port: number };
    assert.notEqual(port, 0);
    const addresses = startAddresses({
      server,
      host: '0.0.0.0',
      dashboardUrl: 'http://127.0.0.1:40123',
      dashboardHost: '127.0.0.1',
      replSocket: '/tmp/payment-gateway-a.sock',
    });
    assert.deepEqual(addresses, {
      api: `http://localhost:${port}/api/v1`,
      viewer: `http://localhost:${port}/`,
      admin: `http://localhost:${port}/admin`,
      docs: `http://localhost:${port}/docs`,
      dashboard: 'http://127.0.0.1:40123/',
      repl_socket: '/tmp/payment-gateway-a.sock',
      repl: 'npm run repl -- /tmp/payment-gateway-a.sock',
    });
  } finally {
    server.close();
  }
});

test('a listener on one address is shown at that address (IPv6 in brackets); a socket path with spaces is quoted', async () => {
  const server = await listening('::1');
  try {
    const { port } = server.address() as { port: number };
    const addresses = startAddresses({
      server,
      host: '::1',
      dashboardUrl: 'http://127.0.0.1:5555',
      dashboardHost: '0.0.0.0',
      replSocket: "/tmp/my gateway's.sock",
    });
    assert.equal(addresses.api, `http://[::1]:${port}/api/v1`);
    assert.equal(addresses.dashboard, 'http://localhost:5555/');
    assert.equal(addresses.repl, `npm run repl -- '/tmp/my gateway'\\''s.sock'`);
  } finally {
    server.close();
  }
});

test('the banner has one aligned line per place to go, the dashboard only when there is one', () => {
  assert.deepEqual(bannerLines(ADDRESSES), [
    'Payment gateway ready:',
    '  API                 http://localhost:3000/api/v1',
    '  Transaction viewer  http://localhost:3000/',
    '  Admin panel         http://localhost:3000/admin',
    '  API docs            http://localhost:3000/docs',
    '  Task dashboard      http://127.0.0.1:5555/',
    '  Admin REPL          npm run repl -- /tmp/payment-gateway-a.sock   (socket /tmp/payment-gateway-a.sock)',
  ]);
  const { dashboard: _dashboard, ...withoutDashboard } = ADDRESSES;
  assert.ok(!bannerLines(withoutDashboard).some((line) => line.includes('dashboard')));
});

test('on a terminal the banner is plain text; otherwise one JSON info line with the addresses as fields', () => {
  const { stream, lines } = captureLines();
  const log = createLogger('info', stream);
  let written = '';
  announceStart(ADDRESSES, { terminal: true, write: (text) => (written += text), log });
  assert.equal(written, `\n${bannerLines(ADDRESSES).join('\n')}\n\n`);
  assert.deepEqual(lines(), []);

  written = '';
  announceStart(ADDRESSES, { terminal: false, write: (text) => (written += text), log });
  assert.equal(written, '');
  const [line, ...more] = lines();
  assert.deepEqual(more, []);
  assert.equal(line?.level, 'info');
  assert.equal(line?.msg, 'gateway ready');
  for (const [field, value] of Object.entries(ADDRESSES)) assert.equal(line?.[field], value, field);
});
