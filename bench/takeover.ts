import { once } from 'node:events';
import { shardOf } from '../engine/shards.ts';
import { startCluster, type Cluster } from './cluster.ts';
import { distribution, freshDatabase, log, seedUsers, sleep, type Report } from './lib.ts';

// Takeover: how long the accounts of an instance that goes away are unavailable. Two gateways (the
// defaults: SHARD_LEASE_MS 5000, SHARD_WAIT_MS 2000); one user owned by the second; the second is then
// killed -9, stopped with SIGSTOP (and left stopped past its lease), or stopped with SIGTERM (a rolling
// restart's step). From that moment a balance read of the user is sent to the first instance every
// PROBE_EVERY_MS, each with a deadline of its own (longer than the gateway's own bounds); measured: when
// the shard table (as the first instance reads it) first shows none of the second's shards, when the
// first read of the user answers 200 (an owner that recovered the account answered it), and the slowest
// read. BENCH_TAKEOVER_ROUNDS rounds per way (3).

const ROUNDS = Number(process.env.BENCH_TAKEOVER_ROUNDS ?? 3);
const USERS = 200;
const PROBE_EVERY_MS = 25;
const PROBE_TIMEOUT_MS = 15_000;
/** Longer than this and the takeover is reported as not happening. */
const GIVE_UP_MS = 60_000;

type Way = 'kill -9' | 'SIGSTOP' | 'SIGTERM';
const WAYS: Way[] = ['kill -9', 'SIGSTOP', 'SIGTERM'];

interface Sample {
  way: Way;
  round: number;
  /** From the signal to the first shard table in which the second instance holds no shard (they may be unowned yet). */
  shards_moved_ms: number;
  /** From the signal to the first 200 of the user's balance through the first instance (when it came). */
  first_answer_ms: number;
  /** Reads answered otherwise meanwhile, by status (503 while no owner answers). */
  refused: Record<string, number>;
  /** The longest any read sent after the signal took, and how it ended. */
  slowest: { ms: number; status: number | string };
}

async function balance(url: string, user: { id: string; key: string }): Promise<number | string> {
  try {
    const response = await fetch(`${url}/api/v1/users/${user.id}/balance`, {
      headers: { authorization: `Bearer ${user.key}` },
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    await response.arrayBuffer();
    return response.status;
  } catch (error) {
    return (error as Error).name;
  }
}

async function measure(way: Way, round: number): Promise<Sample> {
  await freshDatabase();
  const users = await seedUsers(USERS);
  const cluster: Cluster = await startCluster(2, `takeover-${way.replace(/\W/g, '')}-${round}`);
  const [survivor, leaving] = cluster.instances as [Cluster['instances'][0], Cluster['instances'][0]];
  const user = users.find((candidate) => cluster.owners[shardOf(candidate.id, cluster.owners.length)] === leaving.id);
  try {
    if (!user) throw new Error('no user lives on the second instance');
    const before = await balance(survivor.url, user);
    if (before !== 200) throw new Error(`the user's balance answered ${before} before the takeover`);
    const child = leaving.child.process;
    const exited = once(child, 'exit');
    const started = performance.now();
    child.kill(way === 'kill -9' ? 'SIGKILL' : way);
    let shards_moved_ms: number | undefined;
    let first_answer_ms: number | undefined;
    const refused: Record<string, number> = {};
    let slowest: Sample['slowest'] = { ms: 0, status: 200 };
    const watchShards = (async () => {
      while (shards_moved_ms === undefined && performance.now() - started < GIVE_UP_MS) {
        const owners = await cluster.readOwners().catch(() => undefined);
        if (owners && !owners.includes(leaving.id)) shards_moved_ms = performance.now() - started;
        else await sleep(PROBE_EVERY_MS);
      }
    })();
    const probes: Promise<void>[] = [];
    while (first_answer_ms === undefined && performance.now() - started < GIVE_UP_MS) {
      const sent = performance.now();
      probes.push(
        balance(survivor.url, user).then((status) => {
          const took = performance.now() - sent;
          if (took > slowest.ms) slowest = { ms: took, status };
          if (status === 200) first_answer_ms ??= performance.now() - started;
          else refused[status] = (refused[status] ?? 0) + 1;
        }),
      );
      await sleep(PROBE_EVERY_MS);
    }
    await Promise.all([watchShards, ...probes]);
    if (way === 'SIGSTOP') child.kill('SIGCONT');
    if (way !== 'SIGSTOP' || child.exitCode !== null) await exited.catch(() => undefined);
    if (shards_moved_ms === undefined || first_answer_ms === undefined) {
      throw new Error(`${way}: no takeover within ${GIVE_UP_MS} ms`);
    }
    return {
      way,
      round,
      shards_moved_ms: Math.round(shards_moved_ms),
      first_answer_ms: Math.round(first_answer_ms),
      refused,
      slowest: { ms: Math.round(slowest.ms), status: slowest.status },
    };
  } finally {
    await cluster.stop();
  }
}

export async function takeover(): Promise<Report> {
  const samples: Sample[] = [];
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const way of WAYS) {
      const sample = await measure(way, round);
      log(
        `takeover: ${way}, round ${round}: shards moved ${sample.shards_moved_ms} ms, first answer ${sample.first_answer_ms} ms`,
      );
      samples.push(sample);
    }
  }
  const rows = WAYS.map((way) => {
    const of = samples.filter((sample) => sample.way === way);
    const moved = distribution(of.map((sample) => sample.shards_moved_ms));
    const answered = distribution(of.map((sample) => sample.first_answer_ms));
    const refused = of.map(
      (sample) =>
        Object.entries(sample.refused)
          .map(([status, n]) => `${n}× ${status}`)
          .join(', ') || 'none',
    );
    return (
      `| ${way} | ${of.length} | ${of.map((sample) => sample.shards_moved_ms).join(', ')} (p50 ${moved.p50}, max ${moved.max}) | ` +
      `${of.map((sample) => sample.first_answer_ms).join(', ')} (p50 ${answered.p50}, max ${answered.max}) | ${refused.join('; ')} | ` +
      `${of.map((sample) => `${sample.slowest.ms} (${sample.slowest.status})`).join(', ')} |`
    );
  });
  return {
    scenario: 'takeover: an instance goes away',
    figures: { rounds: ROUNDS, users: USERS, probe_every_ms: PROBE_EVERY_MS, samples },
    verdicts: [],
    markdown: [
      '| the second instance | rounds | shards moved, ms after the signal | first 200 for its user through the first instance, ms after the signal | reads answered otherwise meanwhile | slowest read sent after the signal, ms (its answer) |',
      '| --- | ---: | --- | --- | --- | --- |',
      ...rows,
    ].join('\n'),
  };
}
