import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cpuSecondsOf, machineCpu } from './cpu.ts';
import {
  depositsLoad,
  dropDatabase,
  freePort,
  freshDatabase,
  gatewayEnv,
  load,
  log,
  seedUsers,
  startServer,
} from './lib.ts';

// What the merchant webhooks' outbox costs a deposit when no user has an endpoint: the `deposits`
// scenario (bank parked, 64 connections) against the gateway of this tree and against the same gateway
// before the outbox (a checkout of the commit named, the last one without it), in alternating rounds on
// one database so that the machine's load falls on both alike. Gateway CPU from /proc per 2xx.
// Usage: npx tsx bench/outbox-cost.ts <before-rev> [rounds]

const ROOT = resolve(import.meta.dirname, '..');
const [before_rev, rounds_text = '3'] = process.argv.slice(2);
if (!before_rev) throw new Error('usage: npx tsx bench/outbox-cost.ts <the last commit without the outbox> [rounds]');
const ROUNDS = Number(rounds_text);
const USERS = 1000;

/** A detached checkout of `rev` beside this one, sharing its node_modules. */
function checkout(rev: string): { dir: string; remove: () => void } {
  const dir = join(mkdtempSync(join(tmpdir(), 'outbox-before-')), 'tree');
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', dir, rev], { stdio: 'ignore' });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return {
    dir,
    remove: () => {
      execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', dir], { stdio: 'ignore' });
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One round of deposits against the gateway of `dir`: its CPU per accepted deposit, µs, and req/s. */
async function round(dir: string, users: { id: string; key: string }[]) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = await startServer(join(dir, 'main.ts'), gatewayEnv(port), `${url}/health`);
  try {
    const pid = child.process.pid!;
    const before = cpuSecondsOf(pid) ?? NaN;
    const result = await load('deposits', depositsLoad(url, users));
    const spent = (cpuSecondsOf(pid) ?? NaN) - before;
    return { cpu_us: (1e6 * spent) / Math.max(1, result.accepted ?? 0), rps: result.requests_per_s };
  } finally {
    await child.stop();
  }
}

const previous = checkout(before_rev);
const started = machineCpu();
const figures = {
  before: [] as number[],
  after: [] as number[],
  rps_before: [] as number[],
  rps_after: [] as number[],
};
try {
  await freshDatabase();
  const users = await seedUsers(USERS);
  for (let i = 0; i < ROUNDS; i += 1) {
    // Alternating which goes first, so that a trend in the machine's load favours neither.
    const order = i % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
    for (const which of order) {
      const { cpu_us, rps } = await round(which === 'before' ? previous.dir : ROOT, users);
      figures[which].push(cpu_us);
      figures[which === 'before' ? 'rps_before' : 'rps_after'].push(rps);
      log(`round ${i + 1} ${which}: ${Math.round(cpu_us)} µs per deposit, ${rps} req/s`);
    }
  }
} finally {
  previous.remove();
  await dropDatabase();
}
const ended = machineCpu();
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const busy = Math.round((100 * (ended.busy_s - started.busy_s)) / (ended.total_s - started.total_s));
console.log(
  `\nRun of ${new Date().toISOString()}: npx tsx bench/outbox-cost.ts ${before_rev} ${ROUNDS}; cores ${busy} % busy`,
);
console.log('| gateway | CPU µs per deposit (rounds) | median | req/s (median) |');
console.log('| --- | --- | ---: | ---: |');
for (const which of ['before', 'after'] as const) {
  const rps = figures[which === 'before' ? 'rps_before' : 'rps_after'];
  console.log(
    `| ${which} | ${figures[which].map(Math.round).join(', ')} | ${Math.round(median(figures[which]))} | ${median(rps)} |`,
  );
}
console.log(`\nafter / before (medians): ${(median(figures.after) / median(figures.before)).toFixed(3)}×`);
