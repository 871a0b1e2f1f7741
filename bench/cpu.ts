import { readFileSync } from 'node:fs';
import type { Sql } from '../persistence/sql.ts';

// CPU accounting from /proc (Linux): clock ticks of 10 ms (getconf CLK_TCK = 100 here). The machine is
// shared, so the scenarios report CPU per operation of each process, and how busy the cores were.
const TICK_S = 0.01;

/** CPU seconds (user + system) a process has used so far; undefined once it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_S;
  } catch {
    return undefined;
  }
}

/** The whole machine's CPU time so far (all cores): busy and total seconds. */
export function machineCpu(): { busy_s: number; total_s: number } {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const values = ticks.map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.slice(0, 8).reduce((sum, v) => sum + v, 0);
  return { busy_s: (total - idle) * TICK_S, total_s: total * TICK_S };
}

/** CPU so far of one process, of the Postgres backends serving `sql`'s database, of this process, and the machine's. */
export async function cpuNow(pid: number, sql: Sql) {
  const rows = await sql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  const usage = process.cpuUsage();
  return {
    process: cpuSecondsOf(pid) ?? NaN,
    postgres: new Map(rows.map((row) => [row.pid, cpuSecondsOf(row.pid) ?? 0])),
    bench: (usage.user + usage.system) / 1e6,
    machine: machineCpu(),
  };
}

export type CpuNow = Awaited<ReturnType<typeof cpuNow>>;

/** CPU seconds spent between two readings (Postgres: the backends that lived through both), and % of the cores busy. */
export function cpuSpent(before: CpuNow, after: CpuNow) {
  let postgres = 0;
  for (const [pid, seconds] of after.postgres) postgres += seconds - (before.postgres.get(pid) ?? 0);
  return {
    process_s: after.process - before.process,
    postgres_s: postgres,
    bench_s: after.bench - before.bench,
    machine_busy_pct: Math.round(
      (100 * (after.machine.busy_s - before.machine.busy_s)) / (after.machine.total_s - before.machine.total_s),
    ),
  };
}
