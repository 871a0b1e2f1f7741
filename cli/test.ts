import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { migrate } from '../persistence/migrator.ts';
import { createSql } from '../persistence/sql.ts';

// The suite runs against its own database on the local server, created and migrated here.
const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gateway_test';
const coverageLinesMin = 80;
// Names this run's per-process databases, so that two runs on one machine never drop each other's.
const runId = `r${process.pid}`;

async function prepareDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = target.pathname.slice(1);
  const admin = postgres({ ...adminOptions(target), max: 1, onnotice: () => {} });
  try {
    const exists = await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`;
    if (exists.length === 0) await admin.unsafe(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
  } finally {
    await admin.end();
  }
  const sql = createSql(url, { pool_max: 1, application_name: 'gateway-test-setup' });
  try {
    await migrate(sql);
  } finally {
    await sql.end();
  }
}

function adminOptions(target: URL) {
  return {
    host: target.hostname,
    port: Number(target.port || 5432),
    user: decodeURIComponent(target.username || 'postgres'),
    password: decodeURIComponent(target.password) || undefined,
    database: 'postgres',
  };
}

/** Drops the per-process copies the test files made of the template (test/support/database.ts). */
async function dropProcessDatabases(url: string): Promise<void> {
  const target = new URL(url);
  const admin = postgres({ ...adminOptions(target), max: 1, onnotice: () => {} });
  try {
    const copies = await admin<{ datname: string }[]>`
      SELECT datname FROM pg_database WHERE datname LIKE ${`${target.pathname.slice(1)}\\_${runId}\\_p%`}`;
    for (const { datname } of copies) await admin.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (entry === 'node_modules' || entry.startsWith('.')) return [];
    if (statSync(path).isDirectory()) return testFiles(path);
    return entry.endsWith('.test.ts') ? [path] : [];
  });
}

await prepareDatabase(databaseUrl);
const only = process.argv.slice(2);
const files = only.length ? only : testFiles('.').sort();
const result = spawnSync(
  'npx',
  [
    'c8',
    '--check-coverage',
    `--lines=${coverageLinesMin}`,
    '--reporter=text-summary',
    '--exclude=**/*.test.ts',
    '--exclude=test/**',
    '--exclude=cli/**',
    '--exclude=bench/**',
    'node',
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    // A test that hangs fails after this long instead of holding the run until CI's own limit.
    '--test-timeout=180000',
    '--test-reporter=spec',
    ...files,
  ],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      TEST_RUN_ID: runId,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    },
  },
);
await dropProcessDatabases(databaseUrl);
process.exit(result.status ?? 1);
