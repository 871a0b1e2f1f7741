import { Agent, request } from 'node:http';
import { freePort, startChild } from './lib.ts';

// What one forwarded request costs the instance that forwards it, on the client side only: CPU per call
// of Node's fetch, called as http/forward.ts calls it (headers, redirect: 'manual', a timeout signal, the
// body read whole), against node:http with a keep-alive agent, both with 32 calls in flight against the
// bare Koa server of the ceiling (a process of its own, so that its CPU is not counted).
// For scenario 9 of bench/RESULTS.md. Usage: npx tsx bench/forward-client.ts [calls=20000] [rounds=2]

const [callsArg = '20000', roundsArg = '2'] = process.argv.slice(2);
const CALLS = Number(callsArg);
const ROUNDS = Number(roundsArg);
const IN_FLIGHT = 32;
const WARM_UP = 2000;
const TIMEOUT_MS = 10_000;

const headers = {
  authorization: 'Bearer pgw_bench_user_00000000',
  'x-request-id': '6f0c1a52-4c5e-4bde-9a51-0d5f2b1e8c11',
  'x-gateway-forwarded': 'bench 1764000000 c2lnbmF0dXJl',
  'user-agent': 'bench',
};

async function viaFetch(url: string): Promise<number> {
  const response = await fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) });
  return Buffer.from(await response.arrayBuffer()).length;
}

const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
function viaHttp(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { agent, headers, timeout: TIMEOUT_MS }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(Buffer.concat(chunks).length));
      response.on('error', reject);
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error('timeout')));
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Client CPU µs per call and calls per second, `calls` calls with IN_FLIGHT at a time. */
async function measure(call: (url: string) => Promise<number>, url: string, calls: number) {
  let left = calls;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (left-- > 0) await call(url);
    }),
  );
  const used = process.cpuUsage(cpu);
  return {
    cpu_us_per_call: Math.round((10 * (used.user + used.system)) / calls) / 10,
    calls_per_s: Math.round((1000 * calls) / (performance.now() - started)),
  };
}

const port = await freePort();
const server = await startChild('bench/ceiling-server.ts', { PORT: String(port) }, 'ceiling listening');
try {
  const url = `http://127.0.0.1:${port}/api/v1/users/6f0c1a52-4c5e-4bde-9a51-0d5f2b1e8c11/balance`;
  for (const call of [viaFetch, viaHttp]) await measure(call, url, WARM_UP);
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const [name, call] of [
      ['fetch', viaFetch],
      ['node:http keep-alive agent', viaHttp],
    ] as const) {
      console.log(JSON.stringify({ round, client: name, calls: CALLS, ...(await measure(call, url, CALLS)) }));
    }
  }
} finally {
  agent.destroy();
  await server.stop();
}
