import type autocannon from 'autocannon';
import { apiVariants } from './api-variants.ts';
import { endToEnd } from './end-to-end.ts';
import { frontDoor } from './front-door.ts';
import { hotAccount } from './hot-account.ts';
import {
  connect,
  dropDatabase,
  freshDatabase,
  load,
  log,
  seedUsers,
  startChild,
  startGateway,
  freePort,
  type Report,
  type Result,
  depositsLoad,
} from './lib.ts';
import { cpuSecondsOf, machineCpu } from './cpu.ts';
import { lists } from './lists.ts';
import { memory } from './memory.ts';
import { recovery } from './recovery.ts';
import { takeover } from './takeover.ts';
import { tracingCost } from './tracing-cost.ts';
import { twoInstances } from './two-instances.ts';

// Benchmarks against servers on 127.0.0.1 only, each bounded in time, each on a fresh database. The
// throughput rows are compared with the ceiling measured in the same run; the other scenarios report
// their own figures next to their targets. Usage: npm run bench [-- scenario ...]

const USERS = 1000;

async function countTransactions(): Promise<number> {
  const sql = connect('bench-count', 1);
  const rows = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM transactions`;
  await sql.end();
  return rows[0]!.n;
}

async function loadDeposits(scenario: string, options: autocannon.Options): Promise<Result> {
  const before = await countTransactions();
  const result = await load(scenario, options);
  return { ...result, journaled: (await countTransactions()) - before };
}

// The bank is parked (every transfer answered after the run): the gateway's CPU is the API's and the
// payment workers' submissions, read from /proc around the load.
async function deposits(scenario: string, extra: Record<string, string> = {}): Promise<Result> {
  const users = await seedUsers(USERS);
  const gateway = await startGateway(extra);
  const pid = gateway.child.process.pid!;
  try {
    const before = cpuSecondsOf(pid) ?? NaN;
    const result = await loadDeposits(scenario, depositsLoad(gateway.url, users));
    const spent = (cpuSecondsOf(pid) ?? NaN) - before;
    return { ...result, gateway_cpu_us_per_accepted: Math.round((1e6 * spent) / Math.max(1, result.accepted ?? 0)) };
  } finally {
    await gateway.child.stop();
  }
}

// Each scenario gets a fresh database: a gateway resumes every payment left open at start, and the
// deposits of an earlier scenario would otherwise load the next one.
const scenarios: Record<string, () => Promise<Result | Report>> = {
  async ceiling() {
    const port = await freePort();
    const child = await startChild('bench/ceiling-server.ts', { PORT: String(port) }, 'ceiling listening');
    try {
      return await load('ceiling: bare Koa GET', { url: `http://127.0.0.1:${port}/` });
    } finally {
      await child.stop();
    }
  },
  deposits: () => deposits('POST /deposits, group commit (batch ≤ 256)'),
  deposits_unbatched: () => deposits('POST /deposits, group commit off (batch = 1)', { JOURNAL_BATCH_SIZE_MAX: '1' }),
  async balance() {
    const users = await seedUsers(USERS);
    const gateway = await startGateway();
    let next = 0;
    try {
      return await load('GET /users/{id}/balance', {
        url: gateway.url,
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
      await gateway.child.stop();
    }
  },
  end_to_end: endToEnd,
  hot_account: hotAccount,
  recovery,
  memory,
  lists,
  two_instances: twoInstances,
  front_door: frontDoor,
  takeover,
  tracing: tracingCost,
  api_variants: apiVariants,
};

const chosen = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(scenarios);
for (const name of chosen) {
  if (!scenarios[name]) throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
}
const started = new Date();
const results: Result[] = [];
const reports: Report[] = [];
const busy: string[] = [];
try {
  for (const name of chosen) {
    log(`${name}: starting`);
    await freshDatabase();
    const before = machineCpu();
    const started_ms = performance.now();
    const outcome = await scenarios[name]!();
    const after = machineCpu();
    // Others share the machine: how busy its cores were (every process of every user) says how noisy it was.
    busy.push(
      `${name} ${Math.round((performance.now() - started_ms) / 1000)} s, cores ` +
        `${Math.round((100 * (after.busy_s - before.busy_s)) / (after.total_s - before.total_s))} % busy`,
    );
    if ('markdown' in outcome) reports.push(outcome);
    else results.push(outcome);
    console.log(JSON.stringify(outcome));
  }
} finally {
  await dropDatabase();
}

console.log(`\nRun of ${started.toISOString()}, node ${process.version}: npm run bench -- ${chosen.join(' ')}`);
console.log(`Machine during each scenario: ${busy.join('; ')}.`);
if (results.length > 0) {
  const ceiling = results.find((r) => r.scenario.startsWith('ceiling'));
  console.log('\n| scenario | req/s | p50 ms | p99 ms | non-2xx | errors | vs ceiling | gateway CPU µs per 2xx |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const ratio = ceiling ? `${Math.round((100 * r.requests_per_s) / ceiling.requests_per_s)} %` : '–';
    console.log(
      `| ${r.scenario} | ${r.requests_per_s} | ${r.p50_ms} | ${r.p99_ms} | ${r.non2xx} | ${r.errors} | ${ratio} | ` +
        `${r.gateway_cpu_us_per_accepted ?? '–'} |`,
    );
  }
  const batched = results.find((r) => r.scenario.includes('batch ≤'));
  const unbatched = results.find((r) => r.scenario.includes('batch = 1'));
  if (batched && unbatched)
    console.log(`\ngroup commit gain: ${(batched.requests_per_s / unbatched.requests_per_s).toFixed(2)}×`);
}
for (const report of reports) console.log(`\n### ${report.scenario}\n\n${report.markdown}`);
if (reports.length > 0) {
  console.log('\n| scenario | what | measured | target | verdict |');
  console.log('| --- | --- | ---: | ---: | --- |');
  for (const report of reports) {
    for (const v of report.verdicts) {
      console.log(`| ${report.scenario} | ${v.what} | ${v.measured} | ${v.target} | ${v.met ? 'met' : 'missed'} |`);
    }
  }
}
