import { reconcile } from '../engine/reconciliation.ts';
import { createReconciliationReader } from '../persistence/reconciliation-reader.ts';
import { BANK_DEFAULTS } from '../simulator/scenarios.ts';
import { cpuNow, cpuSpent } from './cpu.ts';
import {
  ADMIN_KEY,
  CONNECTIONS,
  DURATION_S,
  connect,
  depositsLoad,
  freshDatabase,
  load,
  log,
  metric,
  seedUsers,
  sleep,
  startGateway,
  type Report,
  type Result,
  type Verdict,
} from './lib.ts';

// Hot path: every deposit on one account. 64 connections post deposits to a single user for three rounds
// of DURATION_S back to back, the in-process bank at its default delays (2–10 s, so settlements of one
// round land in the next); then, in the same run, the same load spread over 100 users, on a fresh
// database and gateway. Per round: req/s, latency, gateway CPU per accepted deposit (/proc). After each
// layout the open deposits are left to settle (at most DRAIN_MAX_S: on a busy machine some are still open,
// which is reported) and the gateway's reconciliation must be clean.
// Verdicts: the last round keeps ≥ 0.9× the first (a hot account does not slow as it fills), and the hot
// account keeps ≥ 0.8× the spread load (one actor is not the bottleneck).

const ROUNDS = 3;
const SPREAD_USERS = 100;
const DRAIN_MAX_S = 60;
const LAST_OVER_FIRST_MIN = 0.9;
const HOT_OVER_SPREAD_MIN = 0.8;

type Layout = 'hot' | 'spread';

interface Round extends Result {
  round: number;
  machine_busy_pct: number;
  /** CPU per accepted deposit (2xx), µs: the gateway, this database's Postgres backends, autocannon. */
  cpu_us_per_accepted: { gateway: number; postgres: number; autocannon: number };
  journal_commits: number;
  journal_appends: number;
}

interface Phase {
  layout: Layout;
  users: number;
  rounds: Round[];
  accepted: number;
  journaled: number;
  settled_after_s: number | null;
  open_left: number;
  reconciliation: Reconciliation;
  gateway_log: { warn: number; error: number; first_problems: string[] };
}

async function openCount(sql: ReturnType<typeof connect>): Promise<{ total: number; open: number }> {
  const [row] = await sql<{ total: number; open: number }[]>`
    SELECT count(*)::int AS total, count(*) FILTER (WHERE status IN ('pending', 'processing'))::int AS open
    FROM transactions`;
  return row!;
}

async function journalCounts(url: string) {
  return {
    commits: (await metric(url, 'gateway_journal_batch_size_count')) ?? NaN,
    appends: (await metric(url, 'gateway_journal_batch_size_sum')) ?? NaN,
  };
}

interface Reconciliation {
  /** GET /api/v1/admin/reconciliation (live actors compared too): its status and time. */
  endpoint_status: number;
  endpoint_ms: number;
  /** Where the figures below come from: the endpoint, or the same check run here when it did not answer 200. */
  via: 'endpoint' | 'bench';
  ms: number;
  ok: boolean;
  users: number;
  events: number;
  discrepancies: number;
  first: unknown[];
}

/**
 * The gateway's reconciliation. The endpoint answers within the request deadline (REQUEST_DEADLINE_MS,
 * 8 s); when it does not answer 200, the same check (engine/reconciliation.ts, as `npm run reconcile`
 * runs it, without the live actors) runs here, unbounded, and both are reported.
 */
async function reconcileAfter(url: string): Promise<Reconciliation> {
  const started = performance.now();
  const response = await fetch(`${url}/api/v1/admin/reconciliation`, {
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  });
  const text = await response.text();
  const endpoint_ms = Math.round(performance.now() - started);
  const endpoint = { endpoint_status: response.status, endpoint_ms };
  if (response.status === 200) {
    const report = JSON.parse(text) as { ok: boolean; users: number; events: number; discrepancies: unknown[] };
    const { ok, users, events, discrepancies } = report;
    const first = discrepancies.slice(0, 3);
    return {
      ...endpoint,
      via: 'endpoint',
      ms: endpoint_ms,
      ok,
      users,
      events,
      discrepancies: discrepancies.length,
      first,
    };
  }
  log(`hot_account: reconciliation answered ${response.status} in ${endpoint_ms} ms: ${text.slice(0, 300)}`);
  const sql = connect('bench-reconcile', 2);
  try {
    const at = performance.now();
    const report = await reconcile(createReconciliationReader(sql));
    return {
      ...endpoint,
      via: 'bench',
      ms: Math.round(performance.now() - at),
      ok: report.discrepancies.length === 0,
      users: report.users,
      events: report.events,
      discrepancies: report.discrepancies.length,
      first: report.discrepancies.slice(0, 3),
    };
  } finally {
    await sql.end();
  }
}

async function phase(layout: Layout): Promise<Phase> {
  const users = await seedUsers(layout === 'hot' ? 1 : SPREAD_USERS);
  const gateway = await startGateway({
    BANK_MIN_DELAY_MS: String(BANK_DEFAULTS.delay_ms_min),
    BANK_MAX_DELAY_MS: String(BANK_DEFAULTS.delay_ms_max),
  });
  const sql = connect('bench-hot-account', 1);
  const pid = gateway.child.process.pid!;
  try {
    const rounds: Round[] = [];
    for (let round = 1; round <= ROUNDS; round += 1) {
      const journalBefore = await journalCounts(gateway.url);
      const before = await cpuNow(pid, sql);
      const result = await load(`${layout} round ${round}`, depositsLoad(gateway.url, users));
      const after = await cpuNow(pid, sql);
      const journalAfter = await journalCounts(gateway.url);
      const spent = cpuSpent(before, after);
      const per = (seconds: number) => Math.round((1e6 * seconds) / Math.max(1, result.accepted ?? 0));
      rounds.push({
        ...result,
        round,
        machine_busy_pct: spent.machine_busy_pct,
        cpu_us_per_accepted: {
          gateway: per(spent.process_s),
          postgres: per(spent.postgres_s),
          autocannon: per(spent.bench_s),
        },
        journal_commits: journalAfter.commits - journalBefore.commits,
        journal_appends: journalAfter.appends - journalBefore.appends,
      });
      log(`hot_account: ${JSON.stringify(rounds.at(-1))}`);
    }
    // The deposits still open settle within the bank's longest delay (plus the workers' pace): bounded.
    const loaded_at = performance.now();
    let settled_after_s: number | null = null;
    let counts = await openCount(sql);
    while (counts.open > 0 && performance.now() - loaded_at < DRAIN_MAX_S * 1000) {
      await sleep(500);
      counts = await openCount(sql);
    }
    if (counts.open === 0) settled_after_s = Math.round((performance.now() - loaded_at) / 100) / 10;
    const reconciliation = await reconcileAfter(gateway.url);
    const accepted = rounds.reduce((sum, r) => sum + (r.accepted ?? 0), 0);
    return {
      layout,
      users: users.length,
      rounds,
      accepted,
      journaled: counts.total,
      settled_after_s,
      open_left: counts.open,
      reconciliation,
      gateway_log: {
        warn: gateway.child.warnings(),
        error: gateway.child.errors(),
        first_problems: gateway.child.problems(),
      },
    };
  } finally {
    await sql.end();
    await gateway.child.stop();
  }
}

const ratio = (a: number, b: number) => Math.round((100 * a) / b) / 100;

export async function hotAccount(): Promise<Report> {
  log(`hot_account: one account, ${CONNECTIONS} connections, ${ROUNDS} × ${DURATION_S} s, bank delays 2–10 s`);
  const hot = await phase('hot');
  await freshDatabase();
  log(`hot_account: the same load over ${SPREAD_USERS} accounts`);
  const spread = await phase('spread');
  const total = (p: Phase) => p.rounds.reduce((sum, r) => sum + r.requests_per_s, 0);
  const first = hot.rounds[0]!;
  const last = hot.rounds.at(-1)!;
  const lastOverFirst = ratio(last.requests_per_s, first.requests_per_s);
  const hotOverSpread = ratio(total(hot), total(spread));
  // autocannon stops counting at the end of a round, so up to CONNECTIONS requests a round were answered
  // (and journaled) without being counted: every 2xx must be in Postgres, and at most that many more.
  const journaledAll = (p: Phase) => p.journaled >= p.accepted && p.journaled <= p.accepted + CONNECTIONS * ROUNDS;
  const clean = (p: Phase) => p.reconciliation.ok && journaledAll(p) && p.rounds.every((r) => r.errors === 0);
  const verdicts: Verdict[] = [
    {
      what: 'hot account: last round req/s over the first',
      target: `≥ ${LAST_OVER_FIRST_MIN}×`,
      measured: `${lastOverFirst}× (${last.requests_per_s} / ${first.requests_per_s})`,
      met: lastOverFirst >= LAST_OVER_FIRST_MIN,
    },
    {
      what: `hot account over ${SPREAD_USERS} accounts, req/s of the ${ROUNDS} rounds summed`,
      target: `≥ ${HOT_OVER_SPREAD_MIN}×`,
      measured: `${hotOverSpread}× (${total(hot)} / ${total(spread)})`,
      met: hotOverSpread >= HOT_OVER_SPREAD_MIN,
    },
    {
      what: 'after each layout: every 2xx in Postgres, reconciliation clean, no errors (deposits still open are reported, not failed)',
      target: 'clean',
      measured: [hot, spread]
        .map(
          (p) =>
            `${p.layout}: ${p.journaled} in Postgres for ${p.accepted} 2xx counted, ${p.open_left} open, ` +
            `${p.reconciliation.discrepancies} discrepancies`,
        )
        .join('; '),
      met: clean(hot) && clean(spread),
    },
  ];
  const rows = [hot, spread].flatMap((p) =>
    p.rounds.map((r) => {
      const cpu = r.cpu_us_per_accepted;
      const statuses = Object.entries(r.non2xx_statuses ?? {})
        .map(([status, n]) => `${n} × ${status}`)
        .join(', ');
      return (
        `| ${p.layout} (${p.users}) | ${r.round} | ${r.requests_per_s} | ${r.p50_ms} | ${r.p99_ms} | ` +
        `${r.non2xx}${statuses ? ` (${statuses})` : ''} | ${r.errors} | ${cpu.gateway} | ${cpu.postgres} | ` +
        `${cpu.autocannon} | ${Math.round((10 * r.journal_appends) / r.journal_commits) / 10} | ${r.machine_busy_pct} % |`
      );
    }),
  );
  const ratios = hot.rounds.map((r, i) => {
    const s = spread.rounds[i]!;
    return (
      `| ${r.round} | ${r.requests_per_s} | ${s.requests_per_s} | **${ratio(r.requests_per_s, s.requests_per_s)}×** | ` +
      `${r.cpu_us_per_accepted.gateway} / ${s.cpu_us_per_accepted.gateway} | ${r.p99_ms} / ${s.p99_ms} |`
    );
  });
  const markdown = [
    ...verdicts.map((v) => `- ${v.what}: ${v.measured} (target ${v.target}): **${v.met ? 'met' : 'missed'}**.`),
    ...[hot, spread].map(
      (p) =>
        `- ${p.layout}: ${p.accepted} deposits accepted, ${p.journaled} transactions in Postgres; ` +
        (p.settled_after_s === null
          ? `${p.open_left} still open ${DRAIN_MAX_S} s after the load; `
          : `all settled ${p.settled_after_s} s after the load; `) +
        `GET /api/v1/admin/reconciliation answered ${p.reconciliation.endpoint_status} in ` +
        `${p.reconciliation.endpoint_ms} ms` +
        (p.reconciliation.via === 'bench'
          ? `, so the same check ran in the bench (npm run reconcile's, no live actors) in ${p.reconciliation.ms} ms`
          : '') +
        `: ${p.reconciliation.ok ? 'clean' : 'NOT clean'}, ` +
        `${p.reconciliation.users} accounts, ${p.reconciliation.events} events, ` +
        `${p.reconciliation.discrepancies} discrepancies; gateway log ${p.gateway_log.warn} warn, ${p.gateway_log.error} error lines.`,
    ),
    '',
    '| layout (accounts) | round | req/s | p50 ms | p99 ms | non-2xx | errors | gateway CPU µs per 2xx | Postgres µs per 2xx | autocannon µs per 2xx | appends per journal commit | cores busy |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    `| round | hot req/s | spread req/s | hot / spread | gateway µs per 2xx, hot / spread | p99 ms, hot / spread |`,
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ratios,
  ].join('\n');
  return {
    scenario: 'hot_account',
    figures: { hot, spread, last_over_first: lastOverFirst, hot_over_spread: hotOverSpread },
    verdicts,
    markdown,
  };
}
