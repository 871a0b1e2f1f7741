import autocannon from 'autocannon';
import { shardOf } from '../engine/shards.ts';
import { startCluster, type Cluster } from './cluster.ts';
import {
  CONNECTIONS,
  DURATION_S,
  connect,
  distribution,
  freshDatabase,
  log,
  metric,
  seedUsers,
  type Report,
  type Verdict,
} from './lib.ts';
import { cpuSecondsOf, machineCpu } from './cpu.ts';
import { twoInstancesMarkdown } from './two-instances-report.ts';

// Scenario 9, 2 instances vs 1 on the same traffic. Each phase: a fresh database with 1,000 users (as
// the deposits scenario), a cluster of 1 or 2 gateways (one database, one Redis key prefix), settled
// shards, then 64 connections for DURATION_S: all 64 on the one instance, or 32 on each of the two (two
// autocannon runs at once, their latency histograms merged). In setup '2' a request whose user's shard
// is owned by the other instance is forwarded there, as behind a load balancer without affinity; setup
// '2, to owner' sends each instance only its own users (the control). Setups run 1, 2, to owner, then
// in reverse (BENCH_TWO_INSTANCES_ROUNDS rounds, 2 by default), so that drift on the shared machine
// falls on all of them; deposits first, then GET balance (BENCH_TWO_INSTANCES_LOADS).

const USERS = 1000;
const ROUNDS = Number(process.env.BENCH_TWO_INSTANCES_ROUNDS ?? 2);
/** The loads to measure, comma-separated: deposits, balance (both by default). */
const LOADS = (process.env.BENCH_TWO_INSTANCES_LOADS ?? 'deposits,balance').split(',') as Workload[];

export type Workload = 'deposits' | 'balance';
/**
 * '1': one instance. '2': two, each sent every user (it forwards about half). '2, to owner': two, each
 * sent only the users of its own shards (no forwarding): the control that tells the cost of the second
 * process on these cores apart from the cost of forwarding. '2, all forwarded': two, each sent only the
 * users of the other's shards (every request forwarded): its gateway CPU per request, next to that of
 * '2, to owner', is what a forwarded request costs against a direct one (edge + owner vs owner alone).
 * '2, one edge': every connection on the first instance, sent only the second's users: each instance's
 * CPU is then one side of the forward alone (the edge's, the owner's).
 */
export type Setup = '1' | '2' | '2, to owner' | '2, all forwarded' | '2, one edge';
const ALL_SETUPS: Setup[] = ['1', '2', '2, to owner', '2, all forwarded', '2, one edge'];
/** The setups to run, comma-separated (BENCH_TWO_INSTANCES_SETUPS): 1, 2 and 2-to-owner by default. */
const SETUPS = (process.env.BENCH_TWO_INSTANCES_SETUPS ?? '1,2,2, to owner')
  .split(/,(?! )/)
  .map((name) => name.trim()) as Setup[];
/** The setups' names in Redis prefixes and instance ids. */
const TAGS: Record<Setup, string> = {
  '1': 'one',
  '2': 'two',
  '2, to owner': 'owner',
  '2, all forwarded': 'fwd',
  '2, one edge': 'edge',
};
type User = { id: string; key: string };

/** What one autocannon run resolves to with `skipAggregateResult` (its histograms still encoded). */
interface RawResult {
  totalCompletedRequests: number;
  duration: number;
}

// In @types/autocannon 7 the export that merges several runs' histograms is missing.
const { aggregateResult } = autocannon as unknown as {
  aggregateResult: (results: RawResult[], options: autocannon.Options) => autocannon.Result;
};

/** Per receiving instance: the answers, split by whether the owner of the user's shard was elsewhere. */
interface Tally {
  local_ms: number[];
  forwarded_ms: number[];
  accepted_ids: string[];
}

export interface Phase {
  workload: Workload;
  setup: Setup;
  round: number;
  requests_per_s: number;
  /** Requests per second of each autocannon run (one per instance). */
  per_instance_per_s: number[];
  completed: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  non2xx_statuses: Record<string, number>;
  errors: number;
  forwarded: number;
  forwarded_share: number;
  /** Latency measured here from setupRequest to onResponse, local vs forwarded requests. */
  local: { p50: number; p99: number };
  remote: { p50: number; p99: number };
  /** Access log lines of the load's route on every instance minus the answers: ≈ forwarded + in flight. */
  log_lines_over_answers: number;
  accepted: number;
  accepted_in_postgres: number;
  transactions: number;
  /** Deposits the payment workers had taken to the bank (no longer pending) when the load ended. */
  sent_to_bank: number;
  owners_moved: number;
  machine_busy_pct: number;
  cpu_ms_per_request: { gateways: number; postgres: number; bench: number };
  /** Each gateway's CPU ms per request of the whole load (in '2, one edge': the edge's, then the owner's). */
  cpu_ms_per_request_each: number[];
  /** Journal commits (group commits) and the appends they carried during the load, all instances. */
  journal_commits: number;
  journal_appends: number;
  /** Gateway log lines at warn or above during the load, and in the whole phase (start and stop included). */
  warnings_during_load: number;
  warnings: number;
  problems: string[];
}

/** The requests of one autocannon run, tallying each answer as local or forwarded (and the 202s' ids). */
function requestsFor(workload: Workload, users: User[], instance: string, owners: string[], tally: Tally) {
  let next = 0;
  const request: autocannon.Request = {
    method: workload === 'deposits' ? 'POST' : 'GET',
    setupRequest: (base, context) => {
      const user = users[next++ % users.length]!;
      Object.assign(context, { user, sent_at: performance.now() });
      const authorization = `Bearer ${user.key}`;
      if (workload === 'balance')
        return { ...base, path: `/api/v1/users/${user.id}/balance`, headers: { authorization } };
      return {
        ...base,
        path: '/api/v1/deposits',
        headers: { authorization, 'content-type': 'application/json', 'idempotency-key': crypto.randomUUID() },
        body: JSON.stringify({ amount: 1000, currency: 'USD' }),
      };
    },
    onResponse: (status, body, context) => {
      const { user, sent_at } = context as { user: User; sent_at: number };
      const local = owners[shardOf(user.id, owners.length)] === instance;
      (local ? tally.local_ms : tally.forwarded_ms).push(performance.now() - sent_at);
      if (status === 202) tally.accepted_ids.push((JSON.parse(body) as { id: string }).id);
    },
  };
  return [request];
}

type Sql = ReturnType<typeof connect>;

/** Journal commits and appends so far, summed over the instances (their Prometheus histograms). */
async function journalCounts(cluster: Cluster) {
  const counts = await Promise.all(
    cluster.instances.map(async (i) => ({
      commits: (await metric(i.url, 'gateway_journal_batch_size_count')) ?? NaN,
      appends: (await metric(i.url, 'gateway_journal_batch_size_sum')) ?? NaN,
    })),
  );
  return counts.reduce((sum, c) => ({ commits: sum.commits + c.commits, appends: sum.appends + c.appends }));
}

/** CPU seconds so far of the gateways, this process (autocannon) and the database's backends; the machine's. */
async function usageNow(cluster: Cluster, sql: Sql) {
  const rows = await sql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  const journal = await journalCounts(cluster);
  const usage = process.cpuUsage();
  return {
    journal,
    each: cluster.instances.map((i) => cpuSecondsOf(i.child.process.pid!) ?? NaN),
    postgres: new Map(rows.map((row) => [row.pid, cpuSecondsOf(row.pid) ?? 0])),
    bench: (usage.user + usage.system) / 1e6,
    machine: machineCpu(),
  };
}

type Usage = Awaited<ReturnType<typeof usageNow>>;

function usageSpent(before: Usage, after: Usage, n: number) {
  let postgres = 0;
  for (const [pid, seconds] of after.postgres) postgres += seconds - (before.postgres.get(pid) ?? 0);
  const ms = (seconds: number) => Math.round((1e6 * seconds) / n) / 1000;
  return {
    machine_busy_pct: Math.round(
      (100 * (after.machine.busy_s - before.machine.busy_s)) / (after.machine.total_s - before.machine.total_s),
    ),
    cpu_ms_per_request: {
      gateways: ms(after.each.reduce((sum, seconds, i) => sum + seconds - before.each[i]!, 0)),
      postgres: ms(postgres),
      bench: ms(after.bench - before.bench),
    },
    cpu_ms_per_request_each: after.each.map((seconds, i) => ms(seconds - before.each[i]!)),
    journal_commits: after.journal.commits - before.journal.commits,
    journal_appends: after.journal.appends - before.journal.appends,
  };
}

/** Which users each instance is sent: all of them (it forwards the others' shards), or only its own. */
function usersOf(setup: Setup, users: User[], cluster: Cluster, i: number): User[] {
  const instance = cluster.instances[i]!;
  if (setup === '2, to owner')
    return users.filter((user) => cluster.owners[shardOf(user.id, cluster.owners.length)] === instance.id);
  if (setup === '2, all forwarded')
    return users.filter((user) => cluster.owners[shardOf(user.id, cluster.owners.length)] !== instance.id);
  if (setup === '2, one edge') {
    if (i > 0) return [];
    return users.filter((user) => cluster.owners[shardOf(user.id, cluster.owners.length)] !== instance.id);
  }
  const offset = Math.floor((i * users.length) / cluster.instances.length);
  return [...users.slice(offset), ...users.slice(0, offset)];
}

/** Loads the cluster: CONNECTIONS split evenly over the instances sent users, every run for DURATION_S at once. */
async function loadCluster(workload: Workload, setup: Setup, users: User[], cluster: Cluster) {
  const loaded = cluster.instances
    .map((instance, i) => ({ instance, users: usersOf(setup, users, cluster, i) }))
    .filter((entry) => entry.users.length > 0);
  const tallies = loaded.map((): Tally => ({ local_ms: [], forwarded_ms: [], accepted_ids: [] }));
  const runs = (await Promise.all(
    loaded.map(({ instance, users: sent }, i) =>
      autocannon({
        url: instance.url,
        connections: CONNECTIONS / loaded.length,
        duration: DURATION_S,
        skipAggregateResult: true,
        requests: requestsFor(workload, sent, instance.id, cluster.owners, tallies[i]!),
      }),
    ),
  )) as unknown as RawResult[];
  const merged = aggregateResult(runs, { url: cluster.instances[0]!.url, connections: CONNECTIONS });
  return { runs, merged, tallies };
}

const warnings = (cluster: Cluster) =>
  cluster.instances.reduce((sum, i) => sum + i.child.warnings() + i.child.errors(), 0);

/** Access log lines of the loaded route, on every instance (a forwarded request is logged by both). */
function routeLines(workload: Workload, cluster: Cluster): number {
  // A forwarded request reaches its owner as an internal command (since the owner stopped re-running the edge).
  const route = (path: string) =>
    path === '/internal/v1/commands' ||
    (workload === 'deposits' ? path === '/api/v1/deposits' : path.endsWith('/balance'));
  return cluster.instances
    .flatMap((instance) => [...instance.requestLines])
    .reduce((sum, [path, n]) => sum + (route(path) ? n : 0), 0);
}

const percentiles = (samples: number[]) => {
  const { p50, p99 } = distribution(samples);
  return { p50, p99 };
};

/** One phase: a fresh database and cluster, the load, then what Postgres and the shard table say. */
async function phase(workload: Workload, setup: Setup, round: number): Promise<Phase> {
  await freshDatabase();
  const users = await seedUsers(USERS);
  const cluster = await startCluster(setup === '1' ? 1 : 2, `${workload}-${TAGS[setup]}-${round}`);
  const sql = connect('bench-two-instances', 1);
  try {
    const [before, warned] = [await usageNow(cluster, sql), warnings(cluster)];
    const { runs, merged, tallies } = await loadCluster(workload, setup, users, cluster);
    const [after, warnedDuring] = [await usageNow(cluster, sql), warnings(cluster) - warned];
    const ownersAfter = await cluster.readOwners();
    const ids = tallies.flatMap((tally) => tally.accepted_ids);
    const [found] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM transactions WHERE id = ANY(string_to_array(${ids.join(',')}, ',')::uuid[])`;
    const [total] = await sql<{ n: number; sent: number }[]>`
      SELECT count(*)::int AS n, count(*) FILTER (WHERE status <> 'pending')::int AS sent FROM transactions`;
    // Stopped here so that every log line is in before they are counted.
    await cluster.stop();
    const completed = runs.reduce((sum, run) => sum + run.totalCompletedRequests, 0);
    const forwarded = tallies.reduce((sum, tally) => sum + tally.forwarded_ms.length, 0);
    const answered = tallies.reduce((sum, tally) => sum + tally.local_ms.length, forwarded);
    const statuses = Object.entries(merged.statusCodeStats ?? {}).filter(([status]) => !status.startsWith('2'));
    return {
      workload,
      setup,
      round,
      requests_per_s: Math.round(runs.reduce((sum, run) => sum + run.totalCompletedRequests / run.duration, 0)),
      per_instance_per_s: runs.map((run) => Math.round(run.totalCompletedRequests / run.duration)),
      completed,
      p50_ms: merged.latency.p50,
      p99_ms: merged.latency.p99,
      non2xx: merged.non2xx,
      non2xx_statuses: Object.fromEntries(statuses.map(([status, stats]) => [status, stats.count ?? 0])),
      errors: merged.errors + merged.timeouts,
      forwarded,
      forwarded_share: answered === 0 ? 0 : forwarded / answered,
      local: percentiles(tallies.flatMap((tally) => tally.local_ms)),
      remote: percentiles(tallies.flatMap((tally) => tally.forwarded_ms)),
      log_lines_over_answers: routeLines(workload, cluster) - answered,
      accepted: ids.length,
      accepted_in_postgres: found!.n,
      transactions: total!.n,
      sent_to_bank: total!.sent,
      owners_moved: ownersAfter.filter((owner, shard) => owner !== cluster.owners[shard]).length,
      ...usageSpent(before, after, completed),
      warnings_during_load: warnedDuring,
      warnings: warnings(cluster),
      problems: cluster.instances.flatMap((i) => i.child.problems()).slice(0, 5),
    };
  } finally {
    await sql.end();
    await cluster.stop();
  }
}

function verdicts(phases: Phase[]): Verdict[] {
  const deposits = phases.filter((p) => p.workload === 'deposits');
  const accepted = deposits.reduce((sum, p) => sum + p.accepted, 0);
  const found = deposits.reduce((sum, p) => sum + p.accepted_in_postgres, 0);
  const non2xx = phases.reduce((sum, p) => sum + p.non2xx + p.errors, 0);
  const moved = phases.reduce((sum, p) => sum + p.owners_moved, 0);
  return [
    {
      what: 'every 202 found in Postgres by its id',
      target: 'all',
      measured: `${found} of ${accepted}`,
      met: found === accepted,
    },
    { what: 'non-2xx answers and errors, all phases', target: '0', measured: String(non2xx), met: non2xx === 0 },
    { what: 'shards that changed owner during a load', target: '0', measured: String(moved), met: moved === 0 },
  ];
}

export async function twoInstances(): Promise<Report> {
  const phases: Phase[] = [];
  for (const setup of SETUPS) if (!ALL_SETUPS.includes(setup)) throw new Error(`unknown setup ${setup}`);
  for (const workload of LOADS) {
    if (workload !== 'deposits' && workload !== 'balance') throw new Error(`unknown load ${String(workload)}`);
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const setup of round % 2 === 1 ? SETUPS : [...SETUPS].reverse()) {
        log(`two_instances: ${workload}, ${setup}, round ${round}`);
        const result = await phase(workload, setup, round);
        log(
          `two_instances: ${result.requests_per_s} req/s, p99 ${result.p99_ms} ms, ` +
            `${Math.round(100 * result.forwarded_share)} % forwarded, non-2xx ${result.non2xx}`,
        );
        phases.push(result);
      }
    }
  }
  return {
    scenario: '9 two instances vs one',
    figures: { duration_s: DURATION_S, connections: CONNECTIONS, users: USERS, rounds: ROUNDS, phases },
    verdicts: verdicts(phases),
    markdown: twoInstancesMarkdown(phases),
  };
}
