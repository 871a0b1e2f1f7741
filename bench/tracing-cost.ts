import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { cpuSecondsOf } from './cpu.ts';
import {
  depositsLoad,
  freePort,
  freshDatabase,
  gatewayEnv,
  load,
  log,
  seedUsers,
  startServer,
  type Report,
} from './lib.ts';

// What tracing costs the gateway: its CPU per accepted deposit (bank parked, as in `deposits`) with
// tracing off, on (exporting every span over OTLP/HTTP to a collector in this process), and in the
// build before tracing existed (a checkout of that commit, BENCH_TRACING_BASELINE). The variants take
// turns, round after round, so that the machine's noise falls on each alike; ratios are within the run.

const USERS = 1000;
const ROUNDS = Number(process.env.BENCH_TRACING_ROUNDS ?? 3);

/** A collector that takes every export and counts its spans (this process's CPU is not the gateway's). */
async function startSink() {
  let spans = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: { scopeSpans: { spans: unknown[] }[] }[];
      };
      for (const resource of body.resourceSpans) for (const scope of resource.scopeSpans) spans += scope.spans.length;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Variant {
  name: string;
  script: string;
  env: Record<string, string>;
  cpu_us: number[];
  requests_per_s: number[];
}

/** One round of one variant: a fresh database, a gateway, 64 connections of deposits; CPU per 2xx from /proc. */
async function round(variant: Variant): Promise<void> {
  await freshDatabase();
  const users = await seedUsers(USERS);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const gateway = await startServer(variant.script, gatewayEnv(port, variant.env), `${url}/health`);
  try {
    const pid = gateway.process.pid!;
    const before = cpuSecondsOf(pid) ?? NaN;
    const result = await load(`deposits, tracing ${variant.name}`, depositsLoad(url, users));
    const spent = (cpuSecondsOf(pid) ?? NaN) - before;
    variant.cpu_us.push(Math.round((1e6 * spent) / Math.max(1, result.accepted ?? 0)));
    variant.requests_per_s.push(result.requests_per_s);
    log(`tracing ${variant.name}: ${variant.cpu_us.at(-1)} µs per deposit, ${result.requests_per_s} req/s`);
  } finally {
    await gateway.stop();
  }
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

/**
 * Off, on, and (BENCH_TRACING_BASELINE: a checkout of the commit before tracing, see RESULTS.md) the
 * build before; without a baseline, off and on alone.
 */
export async function tracingCost(): Promise<Report> {
  const baseline = process.env.BENCH_TRACING_BASELINE;
  const sink = await startSink();
  const variants: Variant[] = [
    { name: 'off', script: 'main.ts', env: {}, cpu_us: [], requests_per_s: [] },
    { name: 'on', script: 'main.ts', env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url }, cpu_us: [], requests_per_s: [] },
  ];
  if (baseline)
    variants.push({ name: 'before', script: join(baseline, 'main.ts'), env: {}, cpu_us: [], requests_per_s: [] });
  try {
    for (let i = 0; i < ROUNDS; i++) for (const variant of variants) await round(variant);
  } finally {
    await sink.close();
  }
  const [off, on, before] = variants.map((variant) => median(variant.cpu_us)) as [number, number, number?];
  const ratio = (x: number, y: number | undefined) => (y === undefined ? 'no baseline' : `${(x / y).toFixed(2)}×`);
  const rows = variants.map(
    (variant) =>
      `| ${variant.name} | ${variant.cpu_us.join(', ')} | ${median(variant.cpu_us)} | ${variant.requests_per_s.join(', ')} |`,
  );
  const markdown = [
    `${ROUNDS} rounds, the variants in turn; ${sink.spans()} spans received by the collector (tracing on).`,
    '',
    '| tracing | gateway CPU µs per 2xx, each round | median | req/s, each round |',
    '| --- | --- | ---: | --- |',
    ...rows,
    '',
    `off / before: ${ratio(off, before)}; on / off: ${ratio(on, off)}; on / before: ${ratio(on, before)}`,
  ].join('\n');
  return {
    scenario: 'tracing cost',
    figures: { off_us: off, on_us: on, before_us: before, rounds: variants, spans: sink.spans() },
    verdicts: [
      {
        what: 'tracing off vs the build before it, CPU per deposit',
        target: '≤ 1.05× (no cost when off)',
        measured: ratio(off, before),
        met: before !== undefined && off / before <= 1.05,
      },
      { what: 'tracing on vs off, CPU per deposit', target: '(measure)', measured: ratio(on, off), met: true },
    ],
    markdown,
  };
}
