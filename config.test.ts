import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { ConfigError, loadConfig } from './config.ts';

test('defaults make a fresh machine work', () => {
  const config = loadConfig({});
  assert.equal(config.PORT, 3000);
  assert.equal(config.DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/postgres');
  assert.equal(config.REDIS_URL, 'redis://127.0.0.1:6379');
  assert.equal(config.BANK_SUCCESS_RATE, 0.9);
  assert.deepEqual(config.CURRENCIES, ['USD', 'EUR', 'GBP']);
  assert.equal(config.IDEMPOTENCY_TTL_HOURS, 24);
});

test('values are parsed from strings', () => {
  const config = loadConfig({
    PORT: '8080',
    WEBHOOK_SECRETS: 'whsec_YQ==, whsec_Yg==',
    BANK_URL: 'http://127.0.0.1:4000',
  });
  assert.equal(config.PORT, 8080);
  assert.deepEqual(config.WEBHOOK_SECRETS, ['whsec_YQ==', 'whsec_Yg==']);
  assert.equal(config.BANK_URL, 'http://127.0.0.1:4000');
});

for (const [variable, value] of [
  ['PORT', 'eighty'],
  ['PORT', '70000'],
  ['DATABASE_URL', 'not a url'],
  ['BANK_SUCCESS_RATE', '1.5'],
  ['WEBHOOK_SECRETS', 'plain-secret'],
  ['LOG_LEVEL', 'loud'],
  ['CURRENCIES', 'usd'],
  ['ADMIN_API_KEY', 'short'],
  ['IDEMPOTENCY_TTL_HOURS', '1'],
  ['HTTP_HEADERS_TIMEOUT_MS', '10'],
  ['DASHBOARD_ALLOWED_HOSTS', 'gateway-1:5555'],
] as const) {
  test(`a bad ${variable} (${value}) is refused by name`, () => {
    assert.throws(
      () => loadConfig({ [variable]: value }),
      (error: unknown) => error instanceof ConfigError && error.variable === variable,
    );
  });
}

test('a minimum delay above the maximum is refused', () => {
  assert.throws(() => loadConfig({ BANK_MIN_DELAY_MS: '5000', BANK_MAX_DELAY_MS: '10' }), /BANK_MIN_DELAY_MS/);
});

test('a headers timeout above the request timeout is refused', () => {
  assert.throws(
    () => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '1000' }),
    /HTTP_HEADERS_TIMEOUT_MS/,
  );
});

test('DASHBOARD_ALLOWED_HOSTS is a list of host names', () => {
  assert.deepEqual(loadConfig({}).DASHBOARD_ALLOWED_HOSTS, []);
  assert.deepEqual(loadConfig({ DASHBOARD_ALLOWED_HOSTS: 'gateway-1, [::2]' }).DASHBOARD_ALLOWED_HOSTS, [
    'gateway-1',
    '[::2]',
  ]);
});

test('the service stops at start with a message naming the variable', () => {
  const run = spawnSync('node', ['--import', 'tsx', 'main.ts'], {
    env: { ...process.env, PORT: 'not-a-port' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /Invalid configuration: PORT/);
});
