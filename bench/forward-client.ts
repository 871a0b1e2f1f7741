import { Agent, request } from 'node:http';
import { createHop } from '../hop.ts';
import { FAULTLESS_BANK, freePort, spawnChild, startChild, waitForHttp, type Child } from './lib.ts';

// What one hop between our processes costs its client: CPU per call, on the client side only, with 32
// calls in flight against a server in a process of its own (so that its CPU is not counted).
// - `forward` (the default): a forwarded GET as http/forward.ts made it with `fetch` (headers,
//   redirect: 'manual', a timeout signal, the body read whole) and as it makes it now on hop.ts's
//   keep-alive pool, plus a bare keep-alive `node:http` request for reference; against the bare Koa
//   server of the ceiling.
// - `bank`: a transfer (POST, JSON body, JSON answer parsed) as engine/bank-client.ts sent it with
//   `fetch` and as it sends it now on hop.ts; against the bank simulator (cli/bank.ts), its delays 0.
// For scenario 9 and "Pooled hops" of bench/RESULTS.md.
// Usage: npx tsx bench/forward-client.ts [forward|bank] [calls=20000] [rounds=2]

// `forward-client.ts 20000 3` (no hop named, as scenario 9 ran it) is the forwarding hop.
const args = process.argv.slice(2);
if (/^\d/.test(args[0] ?? '')) args.unshift('forward');
const [hopArg = 'forward', callsArg = '20000', roundsArg = '2'] = args;
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
const PATH = '/api/v1/users/6f0c1a52-4c5e-4bde-9a51-0d5f2b1e8c11/balance';

type Call = (base: string) => Promise<number>;

// The forwarding hop.
async function forwardViaFetch(base: string): Promise<number> {
  const response = await fetch(base + PATH, { headers, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) });
  return Buffer.from(await response.arrayBuffer()).length;
}

const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
function forwardViaHttp(base: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(base + PATH, { agent, headers, timeout: TIMEOUT_MS }, (response) => {
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

// As http/forward.ts and engine/bank-client.ts build theirs (128 and calls_in_flight_max + 1 sockets).
const forwardHop = createHop({ sockets_max: 128, timeout_ms: TIMEOUT_MS });
async function forwardViaHop(base: string): Promise<number> {
  const response = await forwardHop.request(base, PATH, { method: 'GET', headers });
  return response.body.length;
}

// The bank hop: a transfer, each with its own reference.
let transfers = 0;
const transfer = () =>
  JSON.stringify({
    reference: `0190d3a0-0000-7000-8000-${String((transfers += 1)).padStart(12, '0')}`,
    direction: 'credit',
    amount: 1000,
    currency: 'EUR',
    account: 'bench-account',
  });

async function bankViaFetch(base: string): Promise<number> {
  const response = await fetch(`${base}/bank/v1/transfers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: transfer(),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await response.text().catch(() => '');
  if (response.status !== 202) throw new Error(`bank answered ${response.status}`);
  return Object.keys(JSON.parse(text) as object).length;
}

const bankHop = createHop({ sockets_max: 65, timeout_ms: TIMEOUT_MS });
const JSON_BODY = { 'content-type': 'application/json' };
async function bankViaHop(base: string): Promise<number> {
  const response = await bankHop.request(base, '/bank/v1/transfers', {
    method: 'POST',
    headers: JSON_BODY,
    body: transfer(),
  });
  if (response.status !== 202) throw new Error(`bank answered ${response.status}`);
  return Object.keys(JSON.parse(response.body.toString('utf8')) as object).length;
}

/** Client CPU µs per call and calls per second, `calls` calls with IN_FLIGHT at a time. */
async function measure(call: Call, base: string, calls: number) {
  let left = calls;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (left-- > 0) await call(base);
    }),
  );
  const used = process.cpuUsage(cpu);
  return {
    cpu_us_per_call: Math.round((10 * (used.user + used.system)) / calls) / 10,
    calls_per_s: Math.round((1000 * calls) / (performance.now() - started)),
  };
}

const clients: Record<string, [string, Call][]> = {
  forward: [
    ['fetch (before)', forwardViaFetch],
    ['hop.ts pool (after)', forwardViaHop],
    ['bare node:http keep-alive agent', forwardViaHttp],
  ],
  bank: [
    ['fetch (before)', bankViaFetch],
    ['hop.ts pool (after)', bankViaHop],
  ],
};
const compared = clients[hopArg];
if (!compared) throw new Error(`no hop "${hopArg}": forward or bank`);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
// The bank logs at warn only (its start line included), so it is waited for by its health check.
const startBank = async (): Promise<Child> => {
  const child = spawnChild('cli/bank.ts', {
    BANK_HOST: '127.0.0.1',
    BANK_PORT: String(port),
    ...FAULTLESS_BANK,
    // No callbacks: nothing listens for them here.
    BANK_LOST_CALLBACK_RATE: '1',
    LOG_LEVEL: 'warn',
  });
  await waitForHttp(child, `${base}/health`);
  return child;
};
const server =
  hopArg === 'forward'
    ? await startChild('bench/ceiling-server.ts', { PORT: String(port) }, 'ceiling listening')
    : await startBank();
try {
  for (const [, call] of compared) await measure(call, base, WARM_UP);
  for (let round = 1; round <= ROUNDS; round += 1) {
    const results: Record<string, number> = {};
    for (const [name, call] of compared) {
      const result = await measure(call, base, CALLS);
      results[name] = result.cpu_us_per_call;
      console.log(JSON.stringify({ hop: hopArg, round, client: name, calls: CALLS, ...result }));
    }
    const ratio = results['fetch (before)']! / results['hop.ts pool (after)']!;
    console.log(JSON.stringify({ hop: hopArg, round, cpu_per_call_before_over_after: Math.round(100 * ratio) / 100 }));
  }
} finally {
  agent.destroy();
  forwardHop.close();
  bankHop.close();
  await server.stop();
}
