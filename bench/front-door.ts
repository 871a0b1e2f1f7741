import autocannon from 'autocannon';
import type { FrontDoorStats } from '../front-door.ts';
import { startCluster, type Cluster } from './cluster.ts';
import { cpuSecondsOf, machineCpu } from './cpu.ts';
import {
  CONNECTIONS,
  DURATION_S,
  connect,
  freePort,
  freshDatabase,
  log,
  metric,
  seedUsers,
  startChild,
  type Child,
  type Report,
  type Verdict,
} from './lib.ts';

// Scenario "front door": two instances on the same 2 cores vs one, through the shard-aware front door
// (front-door.ts, in a process of its own as in the compose file) and through the same front door in
// round-robin mode (a balancer without affinity, as nginx was), on the same traffic. Each phase: a fresh
// database with 1,000 users, a cluster of 1 or 2 gateways (bench/cluster.ts), then the entry (the
// gateway itself, or a front door in front of the cluster), one `GET /api/v1/me` per user through it
// (which teaches the front door every key's shard: its answers name it), then 64 connections for
// DURATION_S: deposits (the account is the key's) or balance reads (the account is in the path).
// Setups: '1' (one gateway, direct: the baseline), '1, door' (the front door's own cost), '2, round
// robin', '2, door'. Rounds alternate the order (BENCH_FRONT_DOOR_ROUNDS, 1 by default).

const USERS = 1000;
const ROUNDS = Number(process.env.BENCH_FRONT_DOOR_ROUNDS ?? 1);
const LOADS = (process.env.BENCH_FRONT_DOOR_LOADS ?? 'deposits,balance').split(',') as Workload[];

type Workload = 'deposits' | 'balance';
type Setup = '1' | '1, door' | '2, round robin' | '2, door';
const SETUPS: Setup[] = ['1', '1, door', '2, round robin', '2, door'];
const TAGS: Record<Setup, string> = { '1': 'one', '1, door': 'onedoor', '2, round robin': 'rr', '2, door': 'door' };
type User = { id: string; key: string };

interface Phase {
  workload: Workload;
  setup: Setup;
  round: number;
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  errors: number;
  /** As the gateways said (X-Shard-Local), counted at the front door: answered after forwarding. */
  forwarded: number;
  answered_locally: number;
  machine_busy_pct: number;
  cpu_ms_per_request: { gateways: number; front_door: number; postgres: number; bench: number };
  journal_commits: number;
  journal_appends: number;
  owners_moved: number;
}

async function journal(cluster: Cluster) {
  const counts = await Promise.all(
    cluster.instances.map(async (i) => ({
      commits: (await metric(i.url, 'gateway_journal_batch_size_count')) ?? NaN,
      appends: (await metric(i.url, 'gateway_journal_batch_size_sum')) ?? NaN,
    })),
  );
  return counts.reduce((sum, c) => ({ commits: sum.commits + c.commits, appends: sum.appends + c.appends }));
}

type Sql = ReturnType<typeof connect>;

async function usage(cluster: Cluster, door: Child | undefined, sql: Sql) {
  const rows = await sql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  const cpu = process.cpuUsage();
  return {
    journal: await journal(cluster),
    gateways: cluster.instances.reduce((sum, i) => sum + (cpuSecondsOf(i.child.process.pid!) ?? NaN), 0),
    front_door: door ? (cpuSecondsOf(door.process.pid!) ?? NaN) : 0,
    postgres: new Map(rows.map((row) => [row.pid, cpuSecondsOf(row.pid) ?? 0])),
    bench: (cpu.user + cpu.system) / 1e6,
    machine: machineCpu(),
  };
}

async function doorStats(url: string | undefined): Promise<FrontDoorStats | undefined> {
  if (!url) return undefined;
  return (await (await fetch(`${url}/_front-door/stats`)).json()) as FrontDoorStats;
}

async function phase(workload: Workload, setup: Setup, round: number): Promise<Phase> {
  await freshDatabase();
  const users = await seedUsers(USERS);
  const cluster = await startCluster(setup.startsWith('2') ? 2 : 1, `fd-${workload}-${TAGS[setup]}-${round}`);
  const sql = connect('bench-front-door', 1);
  let door: Child | undefined;
  try {
    let entry = cluster.instances[0]!.url;
    if (setup !== '1') {
      const port = await freePort();
      door = await startChild(
        'cli/front-door.ts',
        {
          PORT: String(port),
          HOST: '127.0.0.1',
          FRONT_DOOR_UPSTREAMS: cluster.instances.map((i) => i.url).join(','),
          FRONT_DOOR_MODE: setup === '2, round robin' ? 'round-robin' : 'shard',
          REDIS_KEY_PREFIX: cluster.prefix,
          LOG_LEVEL: 'info',
        },
        'front door listening',
      );
      entry = `http://127.0.0.1:${port}`;
    }
    // Every setup alike: one GET /api/v1/me per user (the front door learns each key's shard from it).
    for (let i = 0; i < users.length; i += 50) {
      await Promise.all(
        users.slice(i, i + 50).map(async (user) => {
          const response = await fetch(`${entry}/api/v1/me`, { headers: { authorization: `Bearer ${user.key}` } });
          await response.arrayBuffer();
          if (response.status !== 200) throw new Error(`GET /api/v1/me: ${response.status}`);
        }),
      );
    }
    const [before, statsBefore] = [await usage(cluster, door, sql), await doorStats(door && entry)];
    let next = 0;
    const result = await autocannon({
      url: entry,
      connections: CONNECTIONS,
      duration: DURATION_S,
      requests: [
        {
          method: workload === 'deposits' ? 'POST' : 'GET',
          setupRequest: (base) => {
            const user: User = users[next++ % users.length]!;
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
        },
      ],
    });
    const [after, statsAfter] = [await usage(cluster, door, sql), await doorStats(door && entry)];
    const ownersAfter = await cluster.readOwners();
    const n = result.requests.total;
    let postgres = 0;
    for (const [pid, seconds] of after.postgres) postgres += seconds - (before.postgres.get(pid) ?? 0);
    const ms = (seconds: number) => Math.round((1e6 * seconds) / n) / 1000;
    return {
      workload,
      setup,
      round,
      requests_per_s: Math.round(n / result.duration),
      p50_ms: result.latency.p50,
      p99_ms: result.latency.p99,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      forwarded: (statsAfter?.answered_forwarded ?? 0) - (statsBefore?.answered_forwarded ?? 0),
      answered_locally: (statsAfter?.answered_locally ?? 0) - (statsBefore?.answered_locally ?? 0),
      machine_busy_pct: Math.round(
        (100 * (after.machine.busy_s - before.machine.busy_s)) / (after.machine.total_s - before.machine.total_s),
      ),
      cpu_ms_per_request: {
        gateways: ms(after.gateways - before.gateways),
        front_door: ms(after.front_door - before.front_door),
        postgres: ms(postgres),
        bench: ms(after.bench - before.bench),
      },
      journal_commits: after.journal.commits - before.journal.commits,
      journal_appends: after.journal.appends - before.journal.appends,
      owners_moved: ownersAfter.filter((owner, shard) => owner !== cluster.owners[shard]).length,
    };
  } finally {
    await door?.stop();
    await sql.end();
    await cluster.stop();
  }
}

function markdown(phases: Phase[]): string {
  const lines = [
    '| load | setup | round | req/s | p50 ms | p99 ms | non-2xx + errors | forwarded (of answers the gateways marked) | cores busy | CPU ms/request: gateways / front door / Postgres / autocannon | appends per journal commit |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const p of phases) {
    const marked = p.forwarded + p.answered_locally;
    const forwarded =
      p.setup === '1'
        ? '–'
        : `${marked === 0 ? 0 : Math.round((100 * p.forwarded) / marked)} % (${p.forwarded} of ${marked})`;
    const c = p.cpu_ms_per_request;
    const batch = p.journal_commits > 0 ? (p.journal_appends / p.journal_commits).toFixed(1) : '–';
    lines.push(
      `| ${p.workload} | ${p.setup} | ${p.round} | ${p.requests_per_s} | ${p.p50_ms} | ${p.p99_ms} | ${p.non2xx + p.errors} | ${forwarded} | ${p.machine_busy_pct} % | ${c.gateways} / ${c.front_door} / ${c.postgres} / ${c.bench} | ${batch} |`,
    );
  }
  lines.push(
    '',
    '| load | round | 1 req/s | 1, door / 1 | 2, round robin / 1 | **2, door / 1** |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const workload of LOADS) {
    for (let round = 1; round <= ROUNDS; round += 1) {
      const of = (setup: Setup) =>
        phases.find((p) => p.workload === workload && p.round === round && p.setup === setup);
      const one = of('1')?.requests_per_s ?? NaN;
      const ratio = (setup: Setup) => `${((of(setup)?.requests_per_s ?? NaN) / one).toFixed(2)}×`;
      lines.push(
        `| ${workload} | ${round} | ${one} | ${ratio('1, door')} | ${ratio('2, round robin')} | **${ratio('2, door')}** |`,
      );
    }
  }
  return lines.join('\n');
}

export async function frontDoor(): Promise<Report> {
  const phases: Phase[] = [];
  for (const workload of LOADS) {
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const setup of round % 2 === 1 ? SETUPS : [...SETUPS].reverse()) {
        log(`front_door: ${workload}, ${setup}, round ${round}`);
        const result = await phase(workload, setup, round);
        log(`front_door: ${result.requests_per_s} req/s, p99 ${result.p99_ms} ms, ${result.forwarded} forwarded`);
        phases.push(result);
      }
    }
  }
  const failures = phases.reduce((sum, p) => sum + p.non2xx + p.errors, 0);
  const door = phases.filter((p) => p.setup === '2, door');
  const forwarded = door.reduce((sum, p) => sum + p.forwarded, 0);
  const marked = door.reduce((sum, p) => sum + p.forwarded + p.answered_locally, 0);
  const ratios = door.map((p) => {
    const one = phases.find((o) => o.setup === '1' && o.workload === p.workload && o.round === p.round)!;
    return p.requests_per_s / one.requests_per_s;
  });
  const verdicts: Verdict[] = [
    { what: 'non-2xx answers and errors, all phases', target: '0', measured: String(failures), met: failures === 0 },
    {
      what: 'requests forwarded behind the shard-aware front door',
      target: '< 5 %',
      measured: `${marked === 0 ? 0 : ((100 * forwarded) / marked).toFixed(2)} %`,
      met: marked > 0 && forwarded / marked < 0.05,
    },
    {
      what: 'two instances behind the front door / one instance',
      target: '≥ 0.8×',
      measured: ratios.map((r) => `${r.toFixed(2)}×`).join(', '),
      met: ratios.every((r) => r >= 0.8),
    },
  ];
  return {
    scenario: 'front door: two instances behind it vs one',
    figures: { duration_s: DURATION_S, connections: CONNECTIONS, users: USERS, rounds: ROUNDS, phases },
    verdicts,
    markdown: markdown(phases),
  };
}
