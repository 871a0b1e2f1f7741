import { loadavg } from 'node:os';
import type autocannon from 'autocannon';
import { WebSocket } from 'ws';
import { cpuSecondsOf, machineCpu } from './cpu.ts';
import {
  CONNECTIONS,
  DURATION_S,
  connect,
  depositsLoad,
  load,
  log,
  seedUsers,
  sleep,
  startGateway,
  type Report,
  type Result,
} from './lib.ts';

// What the GraphQL API and the WebSocket notifications cost on the hot path. One gateway, 1,000 users,
// the bank parked; the same deposits and balance reads through REST (A, C) and GraphQL (B, D), phases
// alternating ABCD then DCBA so the drift of a shared machine cancels in each variant's mean; then E:
// REST deposits again with 200 WebSocket subscribers, each one user's, against A. Per phase: the
// gateway's CPU (/proc) per 2xx, steadier than req/s on a loaded machine, from the start of the load until
// every deposit of the phase is submitted to the bank (processing), so that a phase pays for its own
// deposits' payment workers and not for those of the phase before.

const USERS = 1000;
const SUBSCRIBERS = 200;
const DRAIN_MAX_S = 120;
const ORDER = ['A', 'B', 'C', 'D', 'D', 'C', 'B', 'A'] as const;
type Variant = (typeof ORDER)[number] | 'E';
type User = { id: string; key: string };

const DEPOSIT = `mutation($input: TransactionInput!) {
  deposit(input: $input) { id type userId amount currency status description metadata failure { code message }
    bankReference attempts createdAt updatedAt completedAt } }`;
const BALANCE = 'query($userId: ID!) { balance(userId: $userId) { userId balances { currency available held } } }';

interface Phase extends Result {
  variant: Variant;
  /** 200 answers whose body carries GraphQL `errors` (a field refused inside a 2xx). */
  graphql_errors: number;
  machine_busy_pct: number;
  /** After the load, until no deposit was left pending (null: some still were after DRAIN_MAX_S). */
  drained_s: number | null;
  gateway_cpu_s: number;
}

/** The same requests as `depositsLoad` (a fresh Idempotency-Key each, users in turn), as GraphQL mutations. */
function graphqlDeposits(url: string, users: User[], errors: { n: number }): autocannon.Options {
  let next = 0;
  return graphqlLoad(url, errors, () => {
    const user = users[next++ % users.length]!;
    const variables = { input: { amount: 1000, currency: 'USD' } };
    return { key: user.key, idempotency: crypto.randomUUID(), body: { query: DEPOSIT, variables } };
  });
}

/** REST's balance reads, users in turn. */
function restBalances(url: string, users: User[]): autocannon.Options {
  let next = 0;
  const setupRequest = (request: autocannon.Request) => {
    const user = users[next++ % users.length]!;
    return { ...request, path: `/api/v1/users/${user.id}/balance`, headers: { authorization: `Bearer ${user.key}` } };
  };
  return { url, requests: [{ method: 'GET', setupRequest }] };
}

function graphqlBalances(url: string, users: User[], errors: { n: number }): autocannon.Options {
  let next = 0;
  return graphqlLoad(url, errors, () => {
    const user = users[next++ % users.length]!;
    return { key: user.key, body: { query: BALANCE, variables: { userId: user.id } } };
  });
}

/** POST /graphql with what `make` gives; counts the 200s whose body reports errors. */
function graphqlLoad(
  url: string,
  errors: { n: number },
  make: () => { key: string; idempotency?: string; body: unknown },
): autocannon.Options {
  const setupRequest = (request: autocannon.Request) => {
    const { key, idempotency, body } = make();
    const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
    if (idempotency) headers['idempotency-key'] = idempotency;
    return { ...request, headers, body: JSON.stringify(body) };
  };
  const onResponse = (status: number, body: string) => {
    if (status === 200 && body.includes('"errors"')) errors.n += 1;
  };
  return { url, requests: [{ method: 'POST', path: '/graphql', setupRequest, onResponse }] };
}

/** Waits until no deposit is pending (its worker has handed it to the bank); the seconds it took, or null. */
async function drain(sql: ReturnType<typeof connect>): Promise<number | null> {
  const started = performance.now();
  for (;;) {
    const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM transactions WHERE status = 'pending'`;
    const waited_s = (performance.now() - started) / 1000;
    if (row!.n === 0) return Math.round(waited_s * 10) / 10;
    if (waited_s > DRAIN_MAX_S) return null;
    await sleep(200);
  }
}

/** Opens one subscribed socket per user and counts the changes they receive; resolves once all are subscribed. */
async function subscribe(url: string, users: User[]): Promise<{ received: () => number; close: () => void }> {
  let received = 0;
  const sockets = users.map((user) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/ws`, {
      headers: { authorization: `Bearer ${user.key}` },
    });
    const subscribed = new Promise<void>((resolve, reject) => {
      ws.on('error', reject);
      ws.once('close', (code) => reject(new Error(`socket of ${user.id} closed (${code}) before subscribing`)));
      ws.on('message', (data) => {
        if ((data as Buffer).toString().startsWith('{"type":"subscribed"')) resolve();
        else received += 1;
      });
    });
    return { ws, subscribed };
  });
  await Promise.all(sockets.map((s) => s.subscribed));
  return { received: () => received, close: () => sockets.forEach((s) => s.ws.close()) };
}

const sum = (phases: Phase[], pick: (p: Phase) => number) => phases.reduce((total, p) => total + pick(p), 0);
const mean = (phases: Phase[], pick: (p: Phase) => number) => sum(phases, pick) / phases.length;
const ratio = (a: number, b: number) => (Math.round((100 * a) / b) / 100).toFixed(2);

export async function apiVariants(): Promise<Report> {
  const load_before = loadavg();
  const users = await seedUsers(USERS);
  // Parked as in `deposits`, for a run ~10× longer: every deposit gets a worker and none polls the bank
  // (10,000 workers and a 30 s callback deadline by default), so every deposit phase costs the same.
  const gateway = await startGateway({ PAYMENT_WORKERS_MAX: '1000000', BANK_CALLBACK_DEADLINE_MS: '3600000' });
  const pid = gateway.child.process.pid!;
  const sql = connect('bench-api-variants', 1);
  const errors = { n: 0 };
  const loads: Record<Variant, () => autocannon.Options> = {
    A: () => depositsLoad(gateway.url, users),
    B: () => graphqlDeposits(gateway.url, users, errors),
    C: () => restBalances(gateway.url, users),
    D: () => graphqlBalances(gateway.url, users, errors),
    E: () => depositsLoad(gateway.url, users),
  };
  const measure = async (variant: Variant): Promise<Phase> => {
    errors.n = 0;
    const [cpu, machine] = [cpuSecondsOf(pid) ?? NaN, machineCpu()];
    const result = await load(variant, loads[variant]());
    const drained_s = await drain(sql);
    const [spent, after] = [(cpuSecondsOf(pid) ?? NaN) - cpu, machineCpu()];
    const busy = (after.busy_s - machine.busy_s) / (after.total_s - machine.total_s);
    const accepted = Math.max(1, result.accepted ?? 0);
    const phase: Phase = {
      ...result,
      variant,
      graphql_errors: errors.n,
      machine_busy_pct: Math.round(100 * busy),
      drained_s,
      gateway_cpu_s: spent,
      gateway_cpu_us_per_accepted: Math.round((1e6 * spent) / accepted),
    };
    log(`api_variants: ${JSON.stringify(phase)}`);
    return phase;
  };
  try {
    // Untimed: the JIT and every actor warm for each variant, so that the first round is not the cold one.
    for (const variant of ['A', 'B', 'C', 'D'] as const) await load(variant, { ...loads[variant](), duration: 1 });
    await drain(sql);
    const phases: Phase[] = [];
    for (const variant of ORDER) phases.push(await measure(variant));
    const sockets = await subscribe(gateway.url, users.slice(0, SUBSCRIBERS));
    const e = await measure('E');
    const delivered = sockets.received();
    sockets.close();
    return report([...phases, e], delivered, { load_before, load_after: loadavg() });
  } finally {
    await sql.end();
    await gateway.child.stop();
  }
}

function report(phases: Phase[], delivered: number, machine: { load_before: number[]; load_after: number[] }): Report {
  const of = (variant: Variant) => phases.filter((p) => p.variant === variant);
  // Pooled over the rounds (all CPU over all 2xx), so that a round with few answers does not weigh as much.
  const cpu = (variant: Variant) =>
    (1e6 * sum(of(variant), (p) => p.gateway_cpu_s)) / sum(of(variant), (p) => p.accepted ?? 0);
  const rps = (variant: Variant) => mean(of(variant), (p) => p.requests_per_s);
  const pair = (what: string, a: Variant, b: Variant) =>
    `| ${what} | ${ratio(cpu(a), cpu(b))}× (${Math.round(cpu(a))} / ${Math.round(cpu(b))} µs) | ` +
    `${ratio(rps(a), rps(b))}× (${Math.round(rps(a))} / ${Math.round(rps(b))}) |`;
  const e = of('E')[0]!;
  const names: Record<Variant, string> = {
    A: 'A: REST POST /deposits',
    B: 'B: GraphQL deposit',
    C: 'C: REST GET /balance',
    D: 'D: GraphQL balance',
    E: `E: REST POST /deposits, ${SUBSCRIBERS} WebSocket subscribers`,
  };
  const rows = phases.map(
    (p, i) =>
      `| ${i + 1} | ${names[p.variant]} | ${p.requests_per_s} | ${p.p50_ms} | ${p.p99_ms} | ${p.non2xx} | ` +
      `${p.graphql_errors} | ${p.errors} | ${p.gateway_cpu_us_per_accepted} | ` +
      `${p.drained_s === null ? `> ${DRAIN_MAX_S}` : p.drained_s} s | ${p.machine_busy_pct} % |`,
  );
  const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(', ');
  const markdown = [
    `${USERS} users, ${CONNECTIONS} connections, ${DURATION_S} s per phase, one gateway, bank parked; ` +
      `load average ${load(machine.load_before)} at the start, ${load(machine.load_after)} at the end.`,
    '',
    '| # | phase | req/s | p50 ms | p99 ms | non-2xx | GraphQL errors in 200s | errors | gateway CPU µs per 2xx | drained after | cores busy |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    '| ratio (CPU: both rounds pooled; req/s: their mean) | gateway CPU per 2xx | req/s |',
    '| --- | ---: | ---: |',
    pair('GraphQL / REST, deposits (B / A)', 'B', 'A'),
    pair('GraphQL / REST, balance reads (D / C)', 'D', 'C'),
    pair(`${SUBSCRIBERS} subscribers / none, REST deposits (E / A)`, 'E', 'A'),
    '',
    `During E the subscribers received ${delivered} changes ` +
      `(${ratio(delivered, Math.max(1, e.accepted ?? 0))} per accepted deposit, ${Math.round(delivered / DURATION_S)}/s).`,
  ].join('\n');
  return {
    scenario: 'api_variants',
    figures: { phases, delivered, ...machine },
    verdicts: [],
    markdown,
  };
}
