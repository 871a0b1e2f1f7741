import type { Phase, Setup } from './two-instances.ts';

// The Markdown of scenario 9: one row per phase, then each round's ratios to the one-instance phase.

const percent = (share: number) => `${Math.round(100 * share)} %`;

function phaseRow(p: Phase): string {
  const statuses = Object.entries(p.non2xx_statuses).map(([status, n]) => `${n}× ${status}`);
  const non2xx = p.non2xx + p.errors === 0 ? '0' : `${p.non2xx} (${statuses.join(', ')}), ${p.errors} errors`;
  const perInstance = p.per_instance_per_s.length > 1 ? ` (${p.per_instance_per_s.join(' + ')})` : '';
  const kept = p.workload === 'deposits' ? `${p.accepted_in_postgres} / ${p.accepted} (${p.sent_to_bank})` : '–';
  const batches = p.journal_commits > 0 ? (p.journal_appends / p.journal_commits).toFixed(1) : '–';
  const cpu = p.cpu_ms_per_request;
  const each = p.cpu_ms_per_request_each.length > 1 ? ` (${p.cpu_ms_per_request_each.join(' + ')})` : '';
  return (
    `| ${p.workload} | ${p.setup} | ${p.round} | ${p.requests_per_s}${perInstance} | ${p.p50_ms} | ${p.p99_ms} | ` +
    `${non2xx} | ${percent(p.forwarded_share)} (${p.forwarded}) | ${p.local.p50} / ${p.local.p99} | ` +
    `${p.forwarded === 0 ? '–' : `${p.remote.p50} / ${p.remote.p99}`} | ${kept} | ${p.machine_busy_pct} % | ` +
    `${cpu.gateways}${each} / ${cpu.postgres} / ${cpu.bench} | ${batches} |`
  );
}

function ratioRows(phases: Phase[]): string[] {
  const rows: string[] = [];
  const find = (of: Phase[], round: number, setup: Setup) => of.find((p) => p.round === round && p.setup === setup);
  const ratio = (two: number, one: number) => `**${(two / one).toFixed(2)}×**`;
  for (const workload of ['deposits', 'balance'] as const) {
    const of = phases.filter((p) => p.workload === workload);
    const rounds = [...new Set(of.map((p) => p.round))];
    const sums = { one: 0, two: 0, owner: 0 };
    for (const round of rounds) {
      const [one, two, owner] = [find(of, round, '1'), find(of, round, '2'), find(of, round, '2, to owner')];
      if (!one || !two || !owner) continue;
      sums.one += one.requests_per_s;
      sums.two += two.requests_per_s;
      sums.owner += owner.requests_per_s;
      rows.push(
        `| ${workload} | ${round} | ${one.requests_per_s} | ${two.requests_per_s} | ${ratio(two.requests_per_s, one.requests_per_s)} | ` +
          `${owner.requests_per_s} | ${ratio(owner.requests_per_s, one.requests_per_s)} | ` +
          `${one.p99_ms} / ${two.p99_ms} / ${owner.p99_ms} |`,
      );
    }
    if (rounds.length > 1 && sums.one > 0) {
      rows.push(
        `| ${workload} | all (sums) | ${sums.one} | ${sums.two} | ${ratio(sums.two, sums.one)} | ${sums.owner} | ` +
          `${ratio(sums.owner, sums.one)} | |`,
      );
    }
  }
  return rows;
}

/** The scenario's Markdown section body. */
export function twoInstancesMarkdown(phases: Phase[]): string {
  const problems = [...new Set(phases.flatMap((p) => p.problems))].slice(0, 5);
  const label = (p: Phase) => `${p.workload}/${p.setup}/${p.round}`;
  return [
    '| load | instances | round | req/s (per instance) | p50 ms | p99 ms | non-2xx | forwarded | local p50 / p99 ms | ' +
      'forwarded p50 / p99 ms | 202s in Postgres (at the bank) | cores busy | CPU ms per request: gateways (each) / Postgres / autocannon | appends per journal commit |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...phases.map(phaseRow),
    '',
    '| load | round | 1 instance req/s | 2 instances req/s | 2 / 1 | 2, to owner req/s | to owner / 1 | p99 ms 1 / 2 / to owner |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ratioRows(phases),
    '',
    `Access log lines of the loaded route minus the answers (≈ the forwarded requests, which both instances ` +
      `log, plus up to 64 in flight at the end): ${phases.map((p) => `${label(p)} ${p.log_lines_over_answers}`).join(', ')}.`,
    `Gateway log lines at warn or above during the load (in the whole phase): ` +
      `${phases.map((p) => `${label(p)} ${p.warnings_during_load} (${p.warnings})`).join(', ')}.`,
    ...(problems.length > 0 ? ['', 'First problems logged:', '', ...problems.map((line) => `- \`${line}\``)] : []),
  ].join('\n');
}
