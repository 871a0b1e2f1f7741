import autocannon from 'autocannon';
import {
  CONNECTIONS,
  FAULTLESS_BANK,
  connect,
  depositsLoad,
  freePort,
  metric,
  gatewayEnv,
  log,
  seedUsers,
  sleep,
  startServer,
  verdict,
  ADMIN_KEY,
  type Child,
  type Report,
  type Verdict,
} from './lib.ts';
import { cpuSecondsOf, machineCpu } from './cpu.ts';

// Scenario 5, end to end: the bank simulator in a process of its own (`cli/bank.ts`, as `npm run bank`)
// settling at once (delays 0, every transfer succeeds, no simulated failures), the gateway calling it
// over BANK_URL and receiving its signed callbacks. autocannon posts deposits with 64 connections for
// 60 s (BENCH_DURATION_S shortens it); meanwhile the open transactions (pending + processing) are
// counted in Postgres every 5 s, and afterwards until they are all settled (at most 60 s more).

const DURATION_S = Math.min(60, Number(process.env.BENCH_DURATION_S ?? 60));
const SAMPLE_EVERY_S = 5;
const DRAIN_MAX_S = 60;
const USERS = 1000;
const TARGET_PER_S = 2000;

interface Sample {
  t_s: number;
  total: number;
  open: number;
  pending: number;
  succeeded: number;
  failed: number;
}

/** Least-squares slope of y over x. */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return sxy / sxx;
}

/** Counter values of one metric, by their label set, from the gateway's Prometheus text. */
async function counters(url: string, name: string): Promise<Record<string, number>> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  const text = await response.text();
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`))
      .map((line) => [line.slice(name.length, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1))]),
  );
}

export async function endToEnd(): Promise<Report> {
  const users = await seedUsers(USERS);
  const gatewayPort = await freePort();
  const bankPort = await freePort();
  const logLevel = process.env.BENCH_LOG_LEVEL ?? 'info';
  const bank = await startServer(
    'cli/bank.ts',
    {
      BANK_HOST: '127.0.0.1',
      BANK_PORT: String(bankPort),
      BANK_CALLBACK_URL: `http://127.0.0.1:${gatewayPort}/webhooks/bank-callback`,
      ...FAULTLESS_BANK,
      BANK_LOST_CALLBACK_RATE: '0',
      BANK_SEED: 'bench',
      LOG_LEVEL: logLevel,
    },
    `http://127.0.0.1:${bankPort}/health`,
  );
  let gateway: Child | undefined;
  const sql = connect('bench-sampler', 1);
  try {
    gateway = await startServer(
      'main.ts',
      gatewayEnv(gatewayPort, { BANK_URL: `http://127.0.0.1:${bankPort}` }),
      `http://127.0.0.1:${gatewayPort}/health`,
    );
    const url = `http://127.0.0.1:${gatewayPort}`;
    const samples: Sample[] = [];
    let t0 = performance.now();
    const sample = async () => {
      const [row] = await sql<Omit<Sample, 't_s'>[]>`
        SELECT count(*)::int AS total,
               count(*) FILTER (WHERE status IN ('pending', 'processing'))::int AS open,
               count(*) FILTER (WHERE status = 'pending')::int AS pending,
               count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
               count(*) FILTER (WHERE status = 'failed')::int AS failed
        FROM transactions`;
      const taken = { t_s: Math.round((performance.now() - t0) / 100) / 10, ...row! };
      samples.push(taken);
      return taken;
    };

    // CPU used during the load by each process: the gateway, the bank, this process (autocannon), and
    // the Postgres backends serving this database.
    const backends = async () => {
      const rows = await sql<{ pid: number }[]>`
        SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
      return rows.map((row) => row.pid);
    };
    const gatewayPid = gateway.process.pid!;
    const cpu = async () => {
      const pids = await backends();
      return {
        gateway: cpuSecondsOf(gatewayPid) ?? NaN,
        bank: cpuSecondsOf(bank.process.pid!) ?? NaN,
        bench: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
        postgres: new Map(pids.map((pid) => [pid, cpuSecondsOf(pid) ?? NaN])),
        machine: machineCpu(),
      };
    };
    // Postgres transactions committed in this database, and the journal's commits (gateway metrics).
    const commits = async () => {
      const [row] = await sql<{ n: string }[]>`
        SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()`;
      return Number(row!.n);
    };
    const journalBatches = async () => ({
      commits: (await metric(url, 'gateway_journal_batch_size_count')) ?? NaN,
      appends: (await metric(url, 'gateway_journal_batch_size_sum')) ?? NaN,
    });
    const commitsBefore = await commits();
    const batchesBefore = await journalBatches();
    t0 = performance.now();
    const cpuBefore = await cpu();
    await sample();
    let loading = true;
    const sampler = (async () => {
      for (let k = 1; loading; k += 1) {
        const due = t0 + k * SAMPLE_EVERY_S * 1000;
        while (loading && performance.now() < due) await sleep(Math.min(200, due - performance.now()));
        if (loading) log(`end_to_end: ${JSON.stringify(await sample())}`);
      }
    })();
    log(`end_to_end: ${DURATION_S} s of deposits, bank out of process (delays 0)`);
    const result = await autocannon({
      ...depositsLoad(url, users),
      connections: CONNECTIONS,
      duration: DURATION_S,
    });
    loading = false;
    const cpuAfter = await cpu();
    await sampler;
    const end = await sample();
    const load_s = end.t_s;
    log(`end_to_end: load over; draining ${JSON.stringify(end)}`);
    // Drain: how long the open transactions take to settle once the load stops (bounded).
    let drained_s: number | undefined;
    while (drained_s === undefined && (performance.now() - t0) / 1000 < load_s + DRAIN_MAX_S) {
      await sleep(1000);
      const s = await sample();
      if (s.open === 0) drained_s = Math.round((s.t_s - load_s) * 10) / 10;
    }
    const last = samples[samples.length - 1]!;
    const bankCalls = await counters(url, 'gateway_bank_calls_total');
    await sleep(1000); // Postgres publishes its statistics within a second.
    const postgres_commits = (await commits()) - commitsBefore;
    const batchesAfter = await journalBatches();
    const journal_commits = batchesAfter.commits - batchesBefore.commits;
    const journal_appends = batchesAfter.appends - batchesBefore.appends;

    const start = samples[0]!;
    const created_per_s = Math.round((end.total - start.total) / load_s);
    const settledOf = (s: Sample) => s.succeeded + s.failed;
    const settled_per_s = Math.round((settledOf(end) - settledOf(start)) / load_s);
    const during = samples.filter((s) => s.t_s <= load_s);
    const secondHalf = during.filter((s) => s.t_s >= load_s / 2);
    const halfFrom = secondHalf[0]!;
    const settled_per_s_second_half = Math.round(
      (settledOf(end) - settledOf(halfFrom)) / Math.max(0.1, end.t_s - halfFrom.t_s),
    );
    const backlog_slope_per_s = Math.round(slope(during.map((s) => ({ x: s.t_s, y: s.open }))) * 10) / 10;
    // "Grows": more than 1 % of what comes in stays open, run after run of samples.
    const grows = backlog_slope_per_s > Math.max(5, 0.01 * created_per_s);

    // Postgres: the backends of this database that lived through the load (a pool's connections do).
    let postgres_s = 0;
    for (const [pid, after] of cpuAfter.postgres) postgres_s += after - (cpuBefore.postgres.get(pid) ?? 0);
    const created = end.total - start.total;
    const cpuMsPerDeposit = (seconds: number) => Math.round((seconds * 1000 * 100) / created) / 100;
    const machine_busy_s = cpuAfter.machine.busy_s - cpuBefore.machine.busy_s;
    const machine_total_s = cpuAfter.machine.total_s - cpuBefore.machine.total_s;
    const cpu_s = {
      gateway: Math.round((cpuAfter.gateway - cpuBefore.gateway) * 10) / 10,
      bank: Math.round((cpuAfter.bank - cpuBefore.bank) * 10) / 10,
      bench_autocannon: Math.round((cpuAfter.bench - cpuBefore.bench) * 10) / 10,
      postgres_backends: Math.round(postgres_s * 10) / 10,
      machine_busy: Math.round(machine_busy_s * 10) / 10,
      machine_total: Math.round(machine_total_s * 10) / 10,
    };
    const cpu_ms_per_deposit = {
      gateway: cpuMsPerDeposit(cpu_s.gateway),
      bank: cpuMsPerDeposit(cpu_s.bank),
      bench_autocannon: cpuMsPerDeposit(cpu_s.bench_autocannon),
      postgres_backends: cpuMsPerDeposit(cpu_s.postgres_backends),
      machine: cpuMsPerDeposit(cpu_s.machine_busy),
    };
    const machine_busy_pct = Math.round((100 * machine_busy_s) / machine_total_s);

    const verdicts: Verdict[] = [
      {
        what: `deposits created and settled per second, sustained ${load_s.toFixed(0)} s`,
        target: `≥ ${TARGET_PER_S.toLocaleString('en')}/s`,
        measured: `${settled_per_s.toLocaleString('en')}/s settled (${created_per_s.toLocaleString('en')}/s created)`,
        met: settled_per_s >= TARGET_PER_S && created_per_s >= TARGET_PER_S,
      },
      {
        what: 'backlog of open transactions over the run',
        target: 'not growing',
        measured: `${backlog_slope_per_s} transactions/s (${grows ? 'grows' : 'flat'})`,
        met: !grows,
      },
    ];
    const figures = {
      duration_s: load_s,
      connections: CONNECTIONS,
      users: USERS,
      requests_per_s: Math.round(result.requests.average),
      accepted_202: result['2xx'],
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      p50_ms: result.latency.p50,
      p99_ms: result.latency.p99,
      created_per_s,
      settled_per_s,
      settled_per_s_second_half,
      backlog_slope_per_s,
      backlog_grows: grows,
      drained_after_s: drained_s ?? null,
      open_at_end_of_drain: last.open,
      bank_calls: bankCalls,
      journal: {
        commits: journal_commits,
        appends: journal_appends,
        appends_per_commit: Math.round((journal_appends / journal_commits) * 10) / 10,
        commits_per_deposit: Math.round((journal_commits / last.total) * 100) / 100,
      },
      postgres_transactions_per_deposit: Math.round((postgres_commits / last.total) * 100) / 100,
      cpu_s,
      cpu_ms_per_deposit,
      machine_busy_pct,
      samples,
      gateway_log: { warn: gateway.warnings(), error: gateway.errors(), first_problems: gateway.problems() },
      bank_log: { warn: bank.warnings(), error: bank.errors(), first_problems: bank.problems() },
    };
    const rows = samples.map((s, i) => {
      const before = samples[i - 1];
      const dt = before ? s.t_s - before.t_s : NaN;
      const rate = (now: number, then: number | undefined) =>
        then === undefined ? '–' : Math.round((now - then) / dt);
      return `| ${s.t_s}${s.t_s > load_s ? ' (drain)' : ''} | ${s.total} | ${rate(s.total, before?.total)} | ${rate(settledOf(s), before && settledOf(before))} | ${s.pending} | ${s.open} |`;
    });
    const markdown = [
      `- ${verdicts[0]!.what}: ${verdict(verdicts[0]!)}.`,
      `- ${verdicts[1]!.what}: ${verdict(verdicts[1]!)}; least-squares slope of the open count over the ` +
        `${during.length} samples of the load, from ${start.open} to ${end.open}.`,
      `- autocannon: ${figures.requests_per_s} req/s, ${result['2xx']} × 202, p50 ${result.latency.p50} ms, ` +
        `p99 ${result.latency.p99} ms, ${result.non2xx} non-2xx, ${figures.errors} errors. Settled in the ` +
        `second half: ${settled_per_s_second_half}/s. After the load, the open transactions ` +
        (drained_s !== undefined
          ? `were all settled ${drained_s} s later.`
          : `were not all settled within ${DRAIN_MAX_S} s (${last.open} left).`),
      `- Bank calls (gateway_bank_calls_total): ${Object.entries(bankCalls)
        .map(([labels, n]) => `${labels} ${n}`)
        .join(', ')}. Log lines at warn/error: gateway ${gateway.warnings()}/${gateway.errors()}, ` +
        `bank ${bank.warnings()}/${bank.errors()}.`,
      `- CPU during the load (/proc): gateway ${cpu_s.gateway} s, bank ${cpu_s.bank} s, autocannon (this ` +
        `process) ${cpu_s.bench_autocannon} s, this database's Postgres backends ${cpu_s.postgres_backends} s; the ` +
        `machine's cores were ${machine_busy_pct} % busy (every process of every user). Per deposit: gateway ` +
        `${cpu_ms_per_deposit.gateway} ms, bank ${cpu_ms_per_deposit.bank} ms, Postgres ${cpu_ms_per_deposit.postgres_backends} ms, ` +
        `autocannon ${cpu_ms_per_deposit.bench_autocannon} ms; the whole machine ${cpu_ms_per_deposit.machine} ms.`,
      `- Journal (gateway_journal_batch_size): ${journal_appends} appends in ${journal_commits} commits, ` +
        `${figures.journal.appends_per_commit} appends per commit, ${figures.journal.commits_per_deposit} journal ` +
        `commits per deposit; Postgres committed ${figures.postgres_transactions_per_deposit} transactions per ` +
        `deposit in all (pg_stat_database.xact_commit, every autocommit statement counting as one).`,
      '',
      '| t s | transactions | created/s | settled/s | pending | open (pending + processing) |',
      '| ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
    return { scenario: 'end_to_end', figures, verdicts, markdown };
  } finally {
    await sql.end();
    await gateway?.stop();
    await bank.stop();
  }
}
