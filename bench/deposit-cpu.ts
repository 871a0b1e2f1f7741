import { readFileSync } from 'node:fs';
import type autocannon from 'autocannon';
import { dropDatabase, freePort, freshDatabase, load, seedUsers, startGateway, startServer } from './lib.ts';

// Gateway CPU per accepted deposit in steady state, the bank parked (it accepts every transfer and answers
// after the run): `npx tsx bench/deposit-cpu.ts`. Unlike scenario `deposits`, each gateway is warmed up
// first (BENCH_WARMUP_S of the same load, not counted: JIT, the 1,000 actors' first recovery, the key
// cache), and the bank can run in a process of its own, as a real bank would: its CPU is then the bank's,
// not the gateway's. Setups are run in turn, BENCH_DEPOSIT_CPU_ROUNDS times, so that a machine whose
// speed drifts shifts them alike; compare within a run.
//
// It uses only what bench/lib.ts has had since the first benchmarks, so that a copy of it in a checkout of
// an older commit measures that commit the same way (RESULTS.md, "CPU per deposit against the baseline").

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 4);
const ROUNDS = Number(process.env.BENCH_DEPOSIT_CPU_ROUNDS ?? 3);
const USERS = 1000;

/** A setup: the gateway's extra environment, and whether the bank runs in a process of its own. */
interface Setup {
  name: string;
  bank_process: boolean;
  env: Record<string, string>;
}

const SETUPS: Setup[] = [
  { name: 'bank in process', bank_process: false, env: {} },
  { name: 'bank process', bank_process: true, env: {} },
  { name: 'bank process, LOG_LEVEL=warn', bank_process: true, env: { LOG_LEVEL: 'warn' } },
];
const chosen = (process.env.BENCH_DEPOSIT_CPU_SETUPS ?? SETUPS.map((setup) => setup.name).join(';')).split(';');

// A bank that accepts every transfer and holds its answer past the run (the parked bank).
const PARKED_BANK = {
  BANK_MIN_DELAY_MS: '600000',
  BANK_MAX_DELAY_MS: '600000',
  BANK_SUCCESS_RATE: '1',
  BANK_TIMEOUT_RATE: '0',
  BANK_UNAVAILABLE_RATE: '0',
  BANK_INVALID_RATE: '0',
  BANK_INSUFFICIENT_FUNDS_RATE: '0',
  BANK_DUPLICATE_CALLBACK_RATE: '0',
  BANK_LOST_CALLBACK_RATE: '0',
};

/** CPU milliseconds (user + system) a process has used so far (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function deposits(url: string, users: { key: string }[], duration: number): autocannon.Options {
  let next = 0;
  return {
    url,
    duration,
    requests: [
      {
        method: 'POST',
        path: '/api/v1/deposits',
        setupRequest: (request) => ({
          ...request,
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${users[next++ % users.length]!.key}`,
            'idempotency-key': crypto.randomUUID(),
          },
          body: JSON.stringify({ amount: 1000, currency: 'USD' }),
        }),
      },
    ],
  };
}

async function measure(setup: Setup) {
  await freshDatabase();
  const users = await seedUsers(USERS);
  const env: Record<string, string> = { ...PARKED_BANK, ...setup.env };
  let bank: Awaited<ReturnType<typeof startServer>> | undefined;
  if (setup.bank_process) {
    const port = await freePort();
    bank = await startServer(
      'cli/bank.ts',
      {
        ...PARKED_BANK,
        BANK_HOST: '127.0.0.1',
        BANK_PORT: String(port),
        // Never called: the bank answers after the run.
        BANK_CALLBACK_URL: 'http://127.0.0.1:9/webhooks/bank-callback',
        LOG_LEVEL: setup.env.LOG_LEVEL ?? 'info',
      },
      `http://127.0.0.1:${port}/health`,
    );
    env.BANK_URL = `http://127.0.0.1:${port}`;
  }
  const gateway = await startGateway(env);
  try {
    await load('warm-up', deposits(gateway.url, users, WARMUP_S));
    const pids = { gateway: gateway.child.process.pid!, bank: bank?.process.pid };
    const before = { gateway: cpuMs(pids.gateway), bank: pids.bank ? cpuMs(pids.bank) : 0 };
    const result = await load(setup.name, deposits(gateway.url, users, DURATION_S));
    const accepted = Math.max(1, result.accepted ?? 0);
    const perDeposit = (spent: number) => Math.round((1000 * spent) / accepted);
    return {
      setup: setup.name,
      requests_per_s: result.requests_per_s,
      non2xx: result.non2xx + result.errors,
      gateway_us: perDeposit(cpuMs(pids.gateway) - before.gateway),
      bank_us: pids.bank ? perDeposit(cpuMs(pids.bank) - before.bank) : undefined,
    };
  } finally {
    await gateway.child.stop();
    await bank?.stop();
  }
}

const rows = [];
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const setup of SETUPS.filter((candidate) => chosen.includes(candidate.name))) {
      const row = { round, ...(await measure(setup)) };
      console.error(JSON.stringify(row));
      rows.push(row);
    }
  }
} finally {
  await dropDatabase();
}
console.log('| round | setup | deposits/s | non-2xx + errors | gateway CPU µs per accepted deposit | bank CPU µs |');
console.log('| ---: | --- | ---: | ---: | ---: | ---: |');
for (const row of rows) {
  console.log(
    `| ${row.round} | ${row.setup} | ${row.requests_per_s} | ${row.non2xx} | ${row.gateway_us} | ${row.bank_us ?? '–'} |`,
  );
}
