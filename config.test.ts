import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CONFIG_VARIABLES, ConfigError, loadConfig, loadEnvFile } from './config.ts';

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
  ['LOG_FORMAT', 'fancy'],
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

/** The `NAME=value` lines of .env.example, each commented out (`# NAME=value`) until someone changes it. */
function exampleSettings(): [string, string][] {
  const text = readFileSync(new URL('.env.example', import.meta.url), 'utf8');
  return [...text.matchAll(/^# ([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((match) => [match[1]!, match[2]!]);
}

test('.env.example names every variable the configuration reads, each once, and nothing else', () => {
  const names = exampleSettings().map(([name]) => name);
  assert.deepEqual([...names].sort(), [...CONFIG_VARIABLES].sort());
});

test(".env.example shows each variable's default: uncommented as it is, it changes nothing", () => {
  assert.deepEqual(loadConfig(Object.fromEntries(exampleSettings())), loadConfig({}));
});

test('an env file adds its variables before the configuration is read; the environment keeps its own', () => {
  const folder = mkdtempSync(join(tmpdir(), 'pgw-env-'));
  const saved = { SHARDS: process.env.SHARDS, SHARD_WAIT_MS: process.env.SHARD_WAIT_MS };
  try {
    writeFileSync(join(folder, '.env'), '# local settings\nSHARDS=7\nSHARD_WAIT_MS=2500\n');
    delete process.env.SHARDS;
    process.env.SHARD_WAIT_MS = '1500';
    assert.equal(loadEnvFile(join(folder, '.env')), true);
    const config = loadConfig();
    assert.equal(config.SHARDS, 7);
    assert.equal(config.SHARD_WAIT_MS, 1500);
    assert.equal(loadEnvFile(join(folder, 'absent.env')), false);
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    rmSync(folder, { recursive: true });
  }
});
