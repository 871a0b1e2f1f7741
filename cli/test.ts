import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { migrate } from '../persistence/migrator.ts';
import { createSql } from '../persistence/sql.ts';
import { dropKeys } from '../test/support/redis.ts';
import { defaultTimeScale } from '../test/support/time.ts';

// The suite runs against its own database on the local server, created and migrated here.
const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gateway_test';
const coverageLinesMin = 80;
/** On a quiet machine; multiplied by the time scale. */
const testTimeoutMs = 180_000;
// Names this run's per-process databases and Redis keys, so that two runs on one machine never drop
// each other's.
const runId = `r${process.pid}`;
// Redis db 15, as with COMPOSE=1: the tests' keys stay out of the developer's db 0.
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/15';
// Decided once for the whole run, so that every test process scales its deadlines alike.
const timeScale = process.env.TEST_TIME_SCALE ?? String(defaultTimeScale());

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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drops the per-process copies the test files made of the template (test/support/database.ts): this
 * run's, and those of runs and single test files whose process is gone (interrupted before their own
 * clean-up). Process ids only say something about a server on this machine, so elsewhere only this
 * run's copies go.
 */
async function dropProcessDatabases(url: string): Promise<string[]> {
  const target = new URL(url);
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(target.hostname);
  const template = target.pathname.slice(1);
  const copy = new RegExp(`^${template.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(r(\\d+)|solo)_p(\\d+)$`);
  const admin = postgres({ ...adminOptions(target), max: 1, onnotice: () => {} });
  try {
    const copies = await admin<{ datname: string }[]>`SELECT datname FROM pg_database`;
    const dropped: string[] = [];
    for (const { datname } of copies) {
      const match = copy.exec(datname);
      if (!match) continue;
      const ours = match[1] === runId;
      const orphaned = local && !alive(Number(match[2] ?? match[3]));
      if (!ours && !orphaned) continue;
      await admin.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      dropped.push(datname);
    }
    return dropped;
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
// `npm test -- [node --test options] [files]`: options such as --test-name-pattern go to node.
const options = process.argv.slice(2).filter((arg) => arg.startsWith('--'));
const only = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const files = only.length ? only : testFiles('.').sort();
// The coverage floor is the whole suite's: a run of a few files reports coverage but is not held to it.
const coverageCheck = only.length ? [] : ['--check-coverage', `--lines=${coverageLinesMin}`];
console.log(`time scale ${timeScale} (load ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores)`);
const child = spawn(
  'npx',
  [
    'c8',
    ...coverageCheck,
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
    // A test that hangs fails after this long instead of holding the run until CI's own limit (each
    // file counts as one test too, so this bounds a file's whole run).
    `--test-timeout=${testTimeoutMs * Number(timeScale)}`,
    '--test-reporter=spec',
    ...options,
    ...files,
  ],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      TEST_RUN_ID: runId,
      TEST_TIME_SCALE: timeScale,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    },
  },
);
// Ctrl-C reaches the test runner too (one process group): wait for it to end, then clean up.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
const [code] = (await once(child, 'exit')) as [number | null];
const dropped = await dropProcessDatabases(databaseUrl);
// What a test left under this run's prefix (test/support/redis.ts), e.g. from a gateway it SIGKILLed.
const keys = await dropKeys(`pgw-test-${runId}-`, redisUrl);
console.log(`run ${runId}: dropped ${dropped.length} test databases and ${keys} Redis keys left behind`);
process.exit(code ?? 1);
