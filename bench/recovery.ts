import autocannon from 'autocannon';
import { generateAccounts } from './dataset.ts';
import {
  connect,
  distribution,
  freePort,
  gatewayEnv,
  log,
  metric,
  sleep,
  spawnChild,
  timedGet,
  verdict,
  type Report,
  type Verdict,
} from './lib.ts';

// Scenario 6, recovery: 100,000 users and 1,000,000 journal events written in SQL (bench/dataset.ts), 90 %
// of the accounts with a snapshot two events before their end. Measures the time from spawning the
// gateway to its first served requests (/health 200, then a balance), and the first answer of cold
// actors: GET balance of users not yet in memory, one at a time, then a burst of them at once.

const USERS = 100_000;
const DEPOSITS = 5; // 10 events per user: 1,000,000 journal rows
const NO_SNAPSHOT_EVERY = 10;
const COLD_SNAPSHOT = 200;
const COLD_FULL_REPLAY = 50;
const COLD_BURST = 5000;
const START_TARGET_MS = 5000;
const COLD_TARGET_MS = 20;

function shuffle<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

type Balance = { balances: { currency: string; available: number; held: number }[] };
const usd = (body: unknown) => (body as Balance | undefined)?.balances?.find((b) => b.currency === 'USD');

/** Runs on the empty, migrated database of run.ts. */
export async function recovery(): Promise<Report> {
  const sql = connect('bench-dataset');
  log(`recovery: generating ${USERS} users, ${USERS * DEPOSITS * 2} journal events`);
  const generatedAt = performance.now();
  const data = await generateAccounts(sql, {
    users: USERS,
    deposits: DEPOSITS,
    no_snapshot_every: NO_SNAPSHOT_EVERY,
    spacing_ms: 5000,
  });
  const generation_s = Math.round((performance.now() - generatedAt) / 100) / 10;
  const [counts] = await sql<{ users: number; journal: number; snapshots: number; transactions: number }[]>`
    SELECT (SELECT count(*)::int FROM users) AS users, (SELECT count(*)::int FROM journal) AS journal,
           (SELECT count(*)::int FROM snapshots) AS snapshots, (SELECT count(*)::int FROM transactions) AS transactions`;
  const [sizes] = await sql<{ database_size: string; journal_size: string }[]>`
    SELECT pg_size_pretty(pg_database_size(current_database())) AS database_size,
           pg_size_pretty(pg_total_relation_size('journal')) AS journal_size`;
  await sql.end();
  log(`recovery: generated in ${generation_s} s ${JSON.stringify({ ...counts, ...sizes, ...data.seconds })}`);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  const child = spawnChild('main.ts', gatewayEnv(port));
  let listening_ms: number | undefined;
  void child.waitFor('gateway listening').then(
    () => (listening_ms = performance.now() - started),
    () => {},
  );
  try {
    // Time to the first served requests: /health polled every 10 ms until 200, then a real balance.
    let health_ms: number | undefined;
    while (health_ms === undefined) {
      if (performance.now() - started > 60_000) throw new Error('the gateway did not answer /health 200 within 60 s');
      if (child.process.exitCode !== null) throw new Error(`the gateway exited with ${child.process.exitCode}`);
      try {
        const response = await fetch(`${url}/health`);
        await response.body?.cancel();
        if (response.status === 200) health_ms = performance.now() - started;
      } catch {
        // Not listening yet.
      }
      if (health_ms === undefined) await sleep(10);
    }
    const order = shuffle(data.users);
    const withSnapshot = order.filter((u) => u.snapshot);
    const fullReplay = order.filter((u) => !u.snapshot);
    const firstUser = withSnapshot.pop()!;
    const first = await timedGet(`${url}/api/v1/users/${firstUser.id}/balance`, firstUser.key);
    const first_balance_ms = performance.now() - started;
    const mismatches: string[] = [];
    const check = (user: (typeof data.users)[number], answer: Awaited<ReturnType<typeof timedGet>>) => {
      const balance = usd(answer.body);
      const expected = Number(data.expectedBalance(user.i));
      if (answer.status !== 200 || balance?.available !== expected || balance.held !== 0) {
        mismatches.push(`user ${user.i}: ${answer.status} ${answer.text.slice(0, 200)} (expected ${expected})`);
      }
    };
    check(firstUser, first);
    log(
      `recovery: listening ${Math.round(listening_ms ?? NaN)} ms, /health 200 at ${Math.round(health_ms)} ms, first balance at ${Math.round(first_balance_ms)} ms`,
    );

    // Warm the process, not the actors: 500 authenticated requests that spawn no actor, and 20 balances.
    const warm = await autocannon({
      url,
      connections: 8,
      amount: 500,
      requests: [
        {
          method: 'GET',
          path: '/api/v1/me',
          setupRequest: (request) => ({
            ...request,
            headers: { authorization: `Bearer ${order[Math.floor(Math.random() * 1000)]!.key}` },
          }),
        },
      ],
    });
    if (warm.non2xx > 0) throw new Error(`warm-up: ${warm.non2xx} non-2xx answers`);
    for (const user of withSnapshot.splice(-20))
      check(user, await timedGet(`${url}/api/v1/users/${user.id}/balance`, user.key));

    // Cold actors, one request at a time.
    const coldSnapshot = withSnapshot.splice(-COLD_SNAPSHOT);
    const coldFull = fullReplay.splice(-COLD_FULL_REPLAY);
    const measure = async (users: typeof coldSnapshot) => {
      const samples: number[] = [];
      for (const user of users) {
        const answer = await timedGet(`${url}/api/v1/users/${user.id}/balance`, user.key);
        check(user, answer);
        samples.push(answer.ms);
      }
      return distribution(samples);
    };
    const cold_snapshot = await measure(coldSnapshot);
    const cold_full_replay = await measure(coldFull);
    const warm_again = await measure(coldSnapshot);
    log(`recovery: cold ${JSON.stringify(cold_snapshot)}, full replay ${JSON.stringify(cold_full_replay)}`);

    // A burst of cold actors at once (64 connections), as after a restart under traffic.
    const burstUsers = withSnapshot.splice(-COLD_BURST);
    let next = 0;
    const burst = await autocannon({
      url,
      connections: 64,
      amount: burstUsers.length,
      requests: [
        {
          method: 'GET',
          setupRequest: (request) => {
            const user = burstUsers[next++ % burstUsers.length]!;
            return {
              ...request,
              path: `/api/v1/users/${user.id}/balance`,
              headers: { authorization: `Bearer ${user.key}` },
            };
          },
        },
      ],
    });
    const alive = await metric(url, 'gateway_actors_alive');
    const expectedAlive = 1 + 20 + COLD_SNAPSHOT + COLD_FULL_REPLAY + COLD_BURST;

    const verdicts: Verdict[] = [
      {
        what: 'process start → first served balance',
        target: `≤ ${START_TARGET_MS / 1000} s`,
        measured: `${(first_balance_ms / 1000).toFixed(2)} s`,
        met: first_balance_ms <= START_TARGET_MS,
      },
      {
        what: 'cold actor first answer (snapshot + 2-event tail), p99 of 200 sequential',
        target: `≤ ${COLD_TARGET_MS} ms`,
        measured: `${cold_snapshot.p99} ms`,
        met: cold_snapshot.p99 <= COLD_TARGET_MS,
      },
    ];
    const figures = {
      data: { ...counts, ...sizes, generation_s, generation_s_by_table: data.seconds },
      start_ms: {
        listening_log_line: Math.round(listening_ms ?? NaN),
        health_200: Math.round(health_ms),
        first_balance: Math.round(first_balance_ms),
        first_balance_request: Math.round(first.ms * 10) / 10,
      },
      cold_snapshot_ms: cold_snapshot,
      cold_full_replay_ms: cold_full_replay,
      warm_same_users_ms: warm_again,
      cold_burst: {
        users: burstUsers.length,
        connections: 64,
        per_s: Math.round(burstUsers.length / burst.duration),
        p50_ms: burst.latency.p50,
        p99_ms: burst.latency.p99,
        max_ms: burst.latency.max,
        non2xx: burst.non2xx,
        errors: burst.errors + burst.timeouts,
      },
      balances_checked: 1 + 20 + COLD_SNAPSHOT * 2 + COLD_FULL_REPLAY,
      balance_mismatches: mismatches.length,
      actors_alive: alive,
      actors_expected: expectedAlive,
      gateway_log: { warn: child.warnings(), error: child.errors(), first_problems: child.problems() },
    };
    if (mismatches.length > 0) log(`recovery: MISMATCHES ${mismatches.slice(0, 5).join('\n')}`);
    const ms = (d: ReturnType<typeof distribution>) => `${d.p50} / ${d.p90} / ${d.p99} / ${d.max}`;
    const markdown = [
      `Data: ${counts!.users.toLocaleString('en')} users, ${counts!.journal.toLocaleString('en')} journal events, ` +
        `${counts!.transactions.toLocaleString('en')} read-model rows, ${counts!.snapshots.toLocaleString('en')} snapshots ` +
        `(database ${sizes!.database_size}, journal with its indexes ${sizes!.journal_size}), written by \`bench/dataset.ts\` in ${generation_s} s ` +
        `(${Object.entries(data.seconds)
          .map(([k, v]) => `${k} ${v} s`)
          .join(', ')}).`,
      '',
      `- ${verdicts[0]!.what}: ${verdict(verdicts[0]!)}. Breakdown from spawn: "gateway listening" logged at ` +
        `${figures.start_ms.listening_log_line} ms, /health 200 at ${figures.start_ms.health_200} ms, the first ` +
        `balance (a cold actor) answered at ${figures.start_ms.first_balance} ms (${figures.start_ms.first_balance_request} ms for that request).`,
      `- ${verdicts[1]!.what}: ${verdict(verdicts[1]!)}.`,
      '',
      '| GET /users/{id}/balance, one at a time | n | p50 ms | p90 ms | p99 ms | max ms |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      `| cold, snapshot + 2-event tail | ${cold_snapshot.n} | ${ms(cold_snapshot).replaceAll(' / ', ' | ')} |`,
      `| cold, no snapshot: 10 events replayed | ${cold_full_replay.n} | ${ms(cold_full_replay).replaceAll(' / ', ' | ')} |`,
      `| the same 200 users again (warm actors) | ${warm_again.n} | ${ms(warm_again).replaceAll(' / ', ' | ')} |`,
      '',
      `Burst: ${burstUsers.length} other cold users over 64 connections: ${figures.cold_burst.per_s} recoveries/s, ` +
        `p50 ${burst.latency.p50} ms, p99 ${burst.latency.p99} ms, ${burst.non2xx} non-2xx, ${figures.cold_burst.errors} errors.`,
      `Checked: ${figures.balances_checked} balance answers against the generated amounts, ${mismatches.length} mismatches; ` +
        `gateway_actors_alive ${alive} (expected ${expectedAlive}); gateway log: ${child.warnings()} warn, ${child.errors()} error lines.`,
    ].join('\n');
    return { scenario: 'recovery', figures, verdicts, markdown };
  } finally {
    await child.stop();
  }
}
