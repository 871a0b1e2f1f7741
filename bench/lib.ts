import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { hashApiKey } from '../http/auth.ts';
import { migrate } from '../persistence/migrator.ts';
import { createSql, type Sql } from '../persistence/sql.ts';

// What every benchmark scenario shares: the database of the run, child processes (servers on 127.0.0.1
// only), autocannon, and the shape of a scenario's report.

export const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
export const CONNECTIONS = 64;
export const ADMIN_KEY = 'bench_admin_key_0123456789';
// One database per run (named after this process), so that two engineers benchmarking at once never drop
// each other's; every scenario recreates it empty and run.ts drops it at the end.
export const DATABASE =
  process.env.BENCH_DATABASE_URL ?? `postgres://postgres@127.0.0.1:5432/gateway_bench_${process.pid}`;
/** When set, every gateway and bank child writes a V8 CPU profile there on exit (`node --cpu-prof`). */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF_DIR;

/** A row of the throughput table (the autocannon scenarios). */
export interface Result {
  scenario: string;
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  errors: number;
  /** For POSTs: 2xx answered, and transactions found in Postgres afterwards. */
  accepted?: number;
  journaled?: number;
  /** The non-2xx answers by status code. */
  non2xx_statuses?: Record<string, number>;
  /** The gateway's CPU (/proc) during the load per 2xx answered, µs. */
  gateway_cpu_us_per_accepted?: number;
}

/** One target of the Benchmarks issue, next to what was measured. */
export interface Verdict {
  what: string;
  target: string;
  measured: string;
  met: boolean;
}

/** What a scenario that is not a plain throughput row reports: figures (JSON), verdicts, Markdown. */
export interface Report {
  scenario: string;
  figures: Record<string, unknown>;
  verdicts: Verdict[];
  markdown: string;
}

export const log = (message: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

/** The API key of the i-th bench user (the seeds of run.ts and of the generated data sets use the same). */
export const userKey = (i: number) => `pgw_bench_user_${String(i).padStart(8, '0')}`;

function adminConnection() {
  const target = new URL(DATABASE);
  return {
    name: target.pathname.slice(1),
    sql: postgres({
      host: target.hostname,
      port: Number(target.port || 5432),
      user: decodeURIComponent(target.username || 'postgres'),
      database: 'postgres',
      max: 1,
      onnotice: () => {},
    }),
  };
}

/** Drops the run's database (when it exists) and creates it again, migrated and empty. */
export async function freshDatabase(): Promise<void> {
  const { name, sql } = adminConnection();
  await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await sql.unsafe(`CREATE DATABASE "${name}"`);
  await sql.end();
  const db = connect('bench-setup');
  await migrate(db);
  await db.end();
}

export async function dropDatabase(): Promise<void> {
  if (process.env.BENCH_KEEP_DATABASE) return;
  const { name, sql } = adminConnection();
  await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await sql.end();
}

export function connect(application_name: string, pool_max = 2): Sql {
  return createSql(DATABASE, { pool_max, application_name });
}

/**
 * One connection of the pool for a session's own settings. postgres.js 3.4.9's reserve() never resolves
 * while the pool has no open connection (measured here: it hung for 10 minutes), so open one first.
 */
export async function reserve(sql: Sql) {
  await sql`SELECT 1`;
  return sql.reserve();
}

/** Inserts `count` users with the keys `userKey(0 … count-1)`. */
export async function seedUsers(count: number): Promise<{ id: string; key: string }[]> {
  const users = Array.from({ length: count }, (_, i) => ({ id: crypto.randomUUID(), key: userKey(i) }));
  const sql = connect('bench-seed');
  for (let from = 0; from < users.length; from += 5000) {
    const slice = users.slice(from, from + 5000);
    const rows = slice.map((u, j) => ({ id: u.id, name: `bench ${from + j}`, email: `bench${from + j}@bench.test` }));
    const keys = slice.map((u) => ({ id: crypto.randomUUID(), user_id: u.id, key_hash: hashApiKey(u.key) }));
    await sql`INSERT INTO users ${sql(rows)}`;
    await sql`INSERT INTO api_keys ${sql(keys)}`;
  }
  await sql.end();
  return users;
}

/** A port nothing listens on now: the kernel's choice for port 0, released at once for a child to take. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A child process whose JSON log lines are watched (counted by level), not kept. */
export interface Child {
  process: ChildProcess;
  /** Resolves once a line containing `text` has been written (rejects if the child exits first). */
  waitFor(text: string, timeout_ms?: number): Promise<void>;
  /** Log lines at warn, and at error or fatal, so far; the first few of them (either level). */
  warnings(): number;
  errors(): number;
  problems(): string[];
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** Extra node flags (before `--import tsx`). */
  node_args?: string[];
  /** Modules to preload after tsx (e.g. bench/memory-probe.ts). */
  preload?: string[];
  /** Opens an IPC channel to the child (process.send / 'message'). */
  ipc?: boolean;
  /** Sees every line the child writes to stdout (its JSON log), e.g. to count some of them. */
  onLine?: (line: string) => void;
}

/** Starts `node --import tsx <script>` with `env` on top of ours; returns at once. */
export function spawnChild(script: string, env: Record<string, string>, options: SpawnOptions = {}): Child {
  const profile = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];
  const args = [
    ...profile,
    ...(options.node_args ?? []),
    '--import',
    'tsx',
    ...(options.preload ?? []).flatMap((module) => ['--import', module]),
    script,
  ];
  const child = spawn('node', args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit', ...(options.ipc ? (['ipc'] as const) : [])],
  });
  let warnings = 0;
  let errors = 0;
  const problems: string[] = [];
  const waiters: { text: string; resolve: () => void }[] = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      options.onLine?.(line);
      const warning = line.includes('"level":"warn"');
      const error = line.includes('"level":"error"') || line.includes('"level":"fatal"');
      if (warning) warnings += 1;
      if (error) errors += 1;
      if ((warning || error) && problems.length < 5) problems.push(line.slice(0, 400));
      for (let i = waiters.length - 1; i >= 0; i -= 1) {
        if (line.includes(waiters[i]!.text)) waiters.splice(i, 1)[0]!.resolve();
      }
    }
  });
  const exited = once(child, 'exit');
  return {
    process: child,
    waitFor(text, timeout_ms = 60_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${script}: no "${text}" within ${timeout_ms} ms`)),
          timeout_ms,
        );
        waiters.push({
          text,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`${script} exited (code ${child.exitCode}) before "${text}"`));
        });
      });
    },
    warnings: () => warnings,
    errors: () => errors,
    problems: () => problems,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Starts a child and waits for its ready line. */
export async function startChild(
  script: string,
  env: Record<string, string>,
  ready: string,
  options: SpawnOptions = {},
): Promise<Child> {
  const child = spawnChild(script, env, options);
  try {
    await child.waitFor(ready);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return child;
}

/** The gateway's environment for a benchmark: rate limits out of the way, the in-process bank settling after the run. */
export function gatewayEnv(port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: DATABASE,
    DATABASE_POOL_MAX: '20',
    ADMIN_API_KEY: ADMIN_KEY,
    // One JSON line per request, as in production.
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    DASHBOARD_PORT: '0',
    INSTANCE_ID: `bench-${process.pid}-${port}`,
    REDIS_KEY_PREFIX: `bench-${process.pid}-${port}:`,
    RATE_LIMIT_GLOBAL_PER_MIN: '100000000',
    RATE_LIMIT_BALANCE_PER_MIN: '100000000',
    RATE_LIMIT_TRANSACTIONS_PER_MIN: '100000000',
    // The bank accepts every transfer and answers after the run: the figure is the API's.
    ...FAULTLESS_BANK,
    BANK_MIN_DELAY_MS: '600000',
    BANK_MAX_DELAY_MS: '600000',
    ...extra,
  };
}

/** A bank that answers at once and accepts every transfer: no fault, no delay, no duplicate callback. */
export const FAULTLESS_BANK: Record<string, string> = {
  BANK_MIN_DELAY_MS: '0',
  BANK_MAX_DELAY_MS: '0',
  BANK_SUCCESS_RATE: '1',
  BANK_TIMEOUT_RATE: '0',
  BANK_UNAVAILABLE_RATE: '0',
  BANK_INVALID_RATE: '0',
  BANK_INSUFFICIENT_FUNDS_RATE: '0',
  BANK_DUPLICATE_CALLBACK_RATE: '0',
};

/**
 * Polls GET `url` until it answers 200 (the gateway answers 503 until it is wired; whatever the log
 * level, unlike a log line). Rejects if the child exits or the time is up.
 */
export async function waitForHttp(child: Child, url: string, timeout_ms = 60_000): Promise<void> {
  const deadline = performance.now() + timeout_ms;
  for (;;) {
    if (child.process.exitCode !== null) throw new Error(`the child exited (${child.process.exitCode}) before ${url}`);
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (performance.now() > deadline) throw new Error(`${url}: no 200 within ${timeout_ms} ms`);
    await sleep(20);
  }
}

/** Starts a server child and waits until GET `health_url` answers 200. */
export async function startServer(
  script: string,
  env: Record<string, string>,
  health_url: string,
  options: SpawnOptions = {},
): Promise<Child> {
  const child = spawnChild(script, env, options);
  try {
    await waitForHttp(child, health_url);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return child;
}

/** Starts the gateway (main.ts) on a free port, ready once /health answers 200. */
export async function startGateway(
  extra: Record<string, string> = {},
  options: SpawnOptions = {},
): Promise<{ child: Child; url: string; port: number }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = await startServer('main.ts', gatewayEnv(port, extra), `${url}/health`, options);
  return { child, url, port };
}

export async function load(scenario: string, options: autocannon.Options): Promise<Result> {
  const result = await autocannon({ connections: CONNECTIONS, duration: DURATION_S, ...options });
  return {
    accepted: result['2xx'],
    scenario,
    requests_per_s: Math.round(result.requests.average),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    non2xx_statuses: Object.fromEntries(
      Object.entries(result.statusCodeStats ?? {})
        .filter(([status]) => !status.startsWith('2'))
        .map(([status, stats]) => [status, stats.count ?? 0]),
    ),
  };
}

/** Percentiles of a list of latencies (nearest rank), rounded to 0.1 ms. */
export function distribution(samples_ms: number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  const sorted = [...samples_ms].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
  const round = (value: number) => Math.round(value * 10) / 10;
  return { n: sorted.length, p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), max: round(at(1)) };
}

/** GET with a timer; the body parsed as JSON when it is JSON. */
export async function timedGet(
  url: string,
  key?: string,
): Promise<{ status: number; ms: number; body: unknown; text: string }> {
  const started = performance.now();
  const response = await fetch(url, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  const text = await response.text();
  const ms = performance.now() - started;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, ms, body, text };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads one gauge or counter (without labels) from the gateway's Prometheus text. */
export async function metric(url: string, name: string): Promise<number | undefined> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  const text = await response.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

export const verdict = (v: Verdict) => `${v.measured} (target ${v.target}): **${v.met ? 'met' : 'missed'}**`;

/** POST /api/v1/deposits with a fresh idempotency key each, over `users` in turn. */
export function depositsLoad(url: string, users: { id: string; key: string }[]): autocannon.Options {
  let next = 0;
  return {
    url,
    requests: [
      {
        method: 'POST',
        path: '/api/v1/deposits',
        setupRequest: (request) => {
          const user = users[next++ % users.length]!;
          return {
            ...request,
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${user.key}`,
              'idempotency-key': crypto.randomUUID(),
            },
            body: JSON.stringify({ amount: 1000, currency: 'USD' }),
          };
        },
      },
    ],
  };
}
