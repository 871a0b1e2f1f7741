import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { hashApiKey } from '../http/auth.ts';
import { migrate } from '../persistence/migrator.ts';
import { createSql } from '../persistence/sql.ts';

// Benchmarks against servers on 127.0.0.1 only, each bounded in time. Every figure is compared with
// the ceiling measured in the same run. Usage: npm run bench [-- scenario ...]

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const CONNECTIONS = 64;
const USERS = 1000;
const ADMIN_KEY = 'bench_admin_key_0123456789';
const DATABASE = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gateway_bench';

interface Result {
  scenario: string;
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  errors: number;
  /** For POSTs: 202s answered, and transactions found in Postgres afterwards. */
  accepted?: number;
  journaled?: number;
}

async function prepareDatabase(): Promise<{ id: string; key: string }[]> {
  const target = new URL(DATABASE);
  const admin = postgres({
    host: target.hostname,
    port: Number(target.port || 5432),
    user: 'postgres',
    database: 'postgres',
    max: 1,
    onnotice: () => {},
  });
  await admin.unsafe(`DROP DATABASE IF EXISTS "${target.pathname.slice(1)}" WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE "${target.pathname.slice(1)}"`);
  await admin.end();
  const sql = createSql(DATABASE, { pool_max: 2, application_name: 'bench-setup' });
  await migrate(sql);
  const users = Array.from({ length: USERS }, (_, i) => ({
    id: crypto.randomUUID(),
    key: `pgw_bench_user_${String(i).padStart(8, '0')}`,
  }));
  await sql`INSERT INTO users ${sql(users.map((u, i) => ({ id: u.id, name: `bench ${i}`, email: `bench${i}@bench.test`, api_key_hash: hashApiKey(u.key) })))}`;
  await sql.end();
  return users;
}

async function startProcess(script: string, env: Record<string, string>, ready: string): Promise<ChildProcess> {
  const child = spawn('node', ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  while (!output.includes(ready)) await once(child.stdout, 'data');
  child.stdout.resume();
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

function gatewayEnv(port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: DATABASE,
    DATABASE_POOL_MAX: '20',
    ADMIN_API_KEY: ADMIN_KEY,
    // One JSON line per request, as in production.
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    DASHBOARD_PORT: '0',
    REDIS_KEY_PREFIX: `bench-${process.pid}-${port}:`,
    RATE_LIMIT_GLOBAL_PER_MIN: '100000000',
    RATE_LIMIT_BALANCE_PER_MIN: '100000000',
    RATE_LIMIT_TRANSACTIONS_PER_MIN: '100000000',
    // The bank accepts every transfer and answers after the run: the figure is the API's.
    BANK_MIN_DELAY_MS: '600000',
    BANK_MAX_DELAY_MS: '600000',
    BANK_SUCCESS_RATE: '1',
    BANK_TIMEOUT_RATE: '0',
    BANK_UNAVAILABLE_RATE: '0',
    BANK_INVALID_RATE: '0',
    ...extra,
  };
}

async function countTransactions(): Promise<number> {
  const sql = createSql(DATABASE, { pool_max: 1, application_name: 'bench-count' });
  const rows = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM transactions`;
  await sql.end();
  return rows[0]!.n;
}

async function loadDeposits(scenario: string, options: autocannon.Options): Promise<Result> {
  const before = await countTransactions();
  const result = await load(scenario, options);
  return { ...result, journaled: (await countTransactions()) - before };
}

async function load(scenario: string, options: autocannon.Options): Promise<Result> {
  const result = await autocannon({ connections: CONNECTIONS, duration: DURATION_S, ...options });
  return {
    accepted: result['2xx'],
    scenario,
    requests_per_s: Math.round(result.requests.average),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

function depositsLoad(url: string, users: { id: string; key: string }[]): autocannon.Options {
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

// Each gateway scenario gets a fresh database: a gateway resumes every payment left open at start, and
// the deposits of an earlier scenario would otherwise load the next one.
const scenarios: Record<string, (users: { id: string; key: string }[]) => Promise<Result>> = {
  async ceiling() {
    const child = await startProcess('bench/ceiling-server.ts', { PORT: '3999' }, 'ceiling listening');
    try {
      return await load('ceiling: bare Koa GET', { url: 'http://127.0.0.1:3999/' });
    } finally {
      await stop(child);
    }
  },
  async deposits(users) {
    const child = await startProcess('main.ts', gatewayEnv(3901), 'gateway listening');
    try {
      return await loadDeposits(
        'POST /deposits, group commit (batch ≤ 256)',
        depositsLoad('http://127.0.0.1:3901', users),
      );
    } finally {
      await stop(child);
    }
  },
  async deposits_unbatched(users) {
    const child = await startProcess('main.ts', gatewayEnv(3902, { JOURNAL_BATCH_SIZE_MAX: '1' }), 'gateway listening');
    try {
      return await loadDeposits(
        'POST /deposits, group commit off (batch = 1)',
        depositsLoad('http://127.0.0.1:3902', users),
      );
    } finally {
      await stop(child);
    }
  },
  async balance(users) {
    const child = await startProcess('main.ts', gatewayEnv(3903), 'gateway listening');
    let next = 0;
    try {
      return await load('GET /users/{id}/balance', {
        url: 'http://127.0.0.1:3903',
        requests: [
          {
            method: 'GET',
            setupRequest: (request) => {
              const user = users[next++ % users.length]!;
              return {
                ...request,
                path: `/api/v1/users/${user.id}/balance`,
                headers: { authorization: `Bearer ${user.key}` },
              };
            },
          },
        ],
      });
    } finally {
      await stop(child);
    }
  },
};

const chosen = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(scenarios);
const results: Result[] = [];
for (const name of chosen) {
  const run = scenarios[name];
  if (!run) throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
  const result = await run(await prepareDatabase());
  results.push(result);
  console.log(JSON.stringify(result));
}
const ceiling = results.find((r) => r.scenario.startsWith('ceiling'));
console.log('\n| scenario | req/s | p50 ms | p99 ms | non-2xx | errors | vs ceiling |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of results) {
  const ratio = ceiling ? `${Math.round((100 * r.requests_per_s) / ceiling.requests_per_s)} %` : '–';
  console.log(
    `| ${r.scenario} | ${r.requests_per_s} | ${r.p50_ms} | ${r.p99_ms} | ${r.non2xx} | ${r.errors} | ${ratio} |`,
  );
}
const batched = results.find((r) => r.scenario.includes('batch ≤'));
const unbatched = results.find((r) => r.scenario.includes('batch = 1'));
if (batched && unbatched)
  console.log(`\ngroup commit gain: ${(batched.requests_per_s / unbatched.requests_per_s).toFixed(2)}×`);
